"""Hash exchange: an HMA-shaped PDQ lookup, and PDQ lists in and out.

``/m/lookup?signal_type=pdq&signal=<hex>`` answers like Meta's Hasher-Matcher-Actioner: for each
bank that holds a near hash, the matching content ids and their distances. The banks here are
``counterfake`` (registered photos, named by opaque ids) and one bank per organisation and
imported source (hashes read from exchange lists, named by their list's own ids). An import
goes to the importing organisation's own bank: another organisation can neither add to it nor
withdraw from it, and none may import into ``counterfake``. PDQ matches whole pictures
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
    check_bank_name,
    read_pdq_text,
    write_pdq_records,
)
from counterfake.keys import ApiKey
from counterfake.references import REGISTERED_BANK, exported_records
from counterfake.service.auth import require
from counterfake.service.forms import one_part
from counterfake.service.organisations import scope, scoped
from counterfake.signature.pdq import MATCH_THRESHOLD, PdqHash

router = APIRouter(tags=["exchange"])
lookup_roles = require("platform", "reviewer")
exchange_roles = require("registrar", "admin")


class LookupMatch(BaseModel):
    bank_content_id: str | int
    distance: int


class Imported(BaseModel):
    source: str
    added: int


IDS = Query(
    "opaque",
    description="'integer' gives bank_content_id as an integer, HMA's exact shape "
    "(the same opaque reference, as a number)",
)
IMPORTS = Query(False, description="also export the hashes this organisation imported")


@router.get("/m/lookup", response_model=dict[str, list[LookupMatch]])
def lookup(
    request: Request,
    signal_type: Literal["pdq"],
    signal: str = Query(min_length=64, max_length=64),
    ids: Literal["opaque", "integer"] = IDS,
    key: ApiKey = Depends(lookup_roles),
) -> dict:
    """Every bank's hashes within Meta's threshold: ``counterfake`` holds the registered
    photos, and each organisation's imports are a bank of their own (``<organisation>/<source>``).
    """
    try:
        PdqHash.from_hex(signal)
    except ValueError as error:
        raise HTTPException(400, str(error)) from None
    service = request.app.state.service
    reference = service.reviews.opaque.number if ids == "integer" else service.reviews.opaque
    banks: dict[str, list[dict]] = {}
    for ref, distance in service.engine.lookup_pdq(signal.lower(), MATCH_THRESHOLD):
        kind, _, ident = ref.partition(":")
        if kind == "photo":
            bank, content = REGISTERED_BANK, reference("photo", int(ident))
        else:
            imported = service.registry.imported_pdq(int(ident))
            if imported is None:
                continue
            bank = imported[0]
            own = imported[3] if ids == "opaque" else None
            content = own or reference("imported", int(ident))
        banks.setdefault(bank, []).append({"bank_content_id": content, "distance": distance})
    return banks


@router.get("/exchange/export", response_class=PlainTextResponse)
def export_hashes(
    request: Request,
    format: Literal["hma", "threatexchange", "stopncii"] = "hma",
    imports: bool = IMPORTS,
    key: ApiKey = Depends(exchange_roles),
) -> str:
    """The PDQ hashes of this organisation's registered photos, under opaque ids (those under
    Meta's quality floor left out), and with ``imports=true`` the hashes it imported. An admin
    exports every registered photo (and every import), as ``counterfake exchange export`` does.
    """
    service = request.app.state.service
    owner = None if key.role == "admin" else scope(key.name)
    records = exported_records(
        service.registry, service.reviews.opaque, owner=owner, imports=imports
    )
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
    """Add the PDQ hashes of an HMA, ThreatExchange or StopNCII list (format detected) to this
    organisation's bank ``source``; withdrawn records delete from that bank only."""
    name = file.filename or "upload"
    try:
        check_bank_name(source)
    except ExchangeFormatError as error:
        raise HTTPException(422, str(error)) from None
    try:
        records = list(read_pdq_text(file.file.read().decode("utf-8"), name))
    except UnicodeDecodeError:
        raise HTTPException(400, f"{name}: not UTF-8 text") from None
    except ExchangeFormatError as error:
        raise HTTPException(400, str(error)) from None
    service = request.app.state.service
    added = service.registry.add_pdq_hashes(records, scoped(key.name, source))
    service.engine.sync()
    return {"source": source, "added": added}
