"""Videos: safe decoding and frame sampling (decode, sampling), Meta's vPDQ (vpdq), the video
signature (signature) and the chaining of frame matches into time segments (timeline).

decode, sampling and vpdq sit at the bottom, beside imaging.py; signature and timeline build
on the photo signature and matching chain above them.
"""
