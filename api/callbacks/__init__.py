"""What processors call: signed OpenDSR callbacks, and the confirmation and upload pages of a
processor asked by e-mail (its signed link is its credential)."""

from fastapi import APIRouter

from api.callbacks import manual_confirm, opendsr

router = APIRouter()
for _module in (opendsr, manual_confirm):
    router.include_router(_module.router)
