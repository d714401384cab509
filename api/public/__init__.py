"""What anyone may reach without signing in: the index, health, the subject's intake and
verification (JSON), and the subject portal (HTML)."""

from fastapi import APIRouter

from api.public import health, home, intake, portal, portal_verify

router = APIRouter()
for _module in (home, health, intake, portal, portal_verify):
    router.include_router(_module.router)
