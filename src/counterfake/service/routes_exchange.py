"""Hash exchange: an HMA-shaped PDQ lookup, and PDQ lists in and out.

``/m/lookup?signal_type=pdq&signal=<hex>`` answers like Meta's Hasher-Matcher-Actioner: for each
bank that holds a near hash, the matching content ids and their distances. The banks here are
``counterfake`` (registered photos, named by opaque ids) and one bank per imported source
(hashes read from exchange lists, named by their list's own ids). PDQ matches whole pictures
only; the partial matching that finds manipulated derivatives needs the image or its signature
(/match/...).
"""

from __future__ import annotations

import io
from typing import Literal

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from counterfake.exchange import (
    ExchangeFormatError,
    PdqRecord,
    read_pdq_text,
    write_pdq_records,
)
from counterfake.keys import ApiKey
from counterfake.service.auth import require
from counterfake.service.forms import one_part
from counterfake.signature.pdq import MATCH_THRESHOLD, MIN_QUALITY, PdqHash

router = APIRouter(tags=["exchange"])
lookup_roles = require("platform", "reviewer")
exchange_roles = require("registrar", "admin")


class LookupMatch(BaseModel):
    bank_content_id: str
    distance: int


class Imported(BaseModel):
    source: str
    added: int


@router.get("/m/lookup", response_model=dict[str, list[LookupMatch]])
def lookup(
    request: Request,
    signal_type: Literal["pdq"],
    signal: str = Query(min_length=64, max_length=64),
    key: ApiKey = Depends(lookup_roles),
) -> dict:
    try:
        PdqHash.from_hex(signal)
    except ValueError as error:
        raise HTTPException(400, str(error)) from None
    service = request.app.state.service
    banks: dict[str, list[dict]] = {}
    for ref, distance in service.engine.lookup_pdq(signal.lower(), MATCH_THRESHOLD):
        kind, _, ident = ref.partition(":")
        if kind == "photo":
            bank, content = "counterfake", service.reviews.opaque("photo", int(ident))
        else:
            imported = service.registry.imported_pdq(int(ident))
            if imported is None:
                continue
            bank, content = imported[0], imported[3] or ident
        banks.setdefault(bank, []).append({"bank_content_id": content, "distance": distance})
    return banks


@router.get("/exchange/export", response_class=PlainTextResponse)
def export_hashes(
    request: Request,
    format: Literal["hma", "threatexchange", "stopncii"] = "hma",
    key: ApiKey = Depends(exchange_roles),
) -> str:
    """Every PDQ hash the registry holds: registered photos (under opaque ids; those under
    Meta's quality floor left out, as ``counterfake exchange export`` does) and imported ones."""
    service = request.app.state.service
    records = []
    for kind, ref, quality, hex_hash in service.registry.pdq_hashes():
        if kind == "photo":
            if quality < MIN_QUALITY:
                continue
            name = service.reviews.opaque("photo", int(ref))
        else:
            imported = service.registry.imported_pdq(int(ref))
            name = (imported[3] if imported else None) or ref
        records.append(PdqRecord(hex_hash, quality, name))
    out = io.StringIO()
    write_pdq_records(records, out, format)
    return out.getvalue()


@router.post("/exchange/import", response_model=Imported, dependencies=[Depends(one_part("file"))])
def import_hashes(
    request: Request,
    file: UploadFile,
    source: str = Form(min_length=1, max_length=100),
    key: ApiKey = Depends(exchange_roles),
) -> dict:
    """Add the PDQ hashes of an HMA, ThreatExchange or StopNCII list (format detected)."""
    name = file.filename or "upload"
    try:
        records = list(read_pdq_text(file.file.read().decode("utf-8"), name))
    except UnicodeDecodeError:
        raise HTTPException(400, f"{name}: not UTF-8 text") from None
    except ExchangeFormatError as error:
        raise HTTPException(400, str(error)) from None
    service = request.app.state.service
    added = service.registry.add_pdq_hashes(records, source)
    service.engine.sync()
    return {"source": source, "added": added}
