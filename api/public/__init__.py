"""What anyone may reach without signing in: the index, health, the subject's intake and
verification (JSON), and the subject portal (HTML). A post any of them gets from another site's
page is refused before the route runs (api/public/cross_site.py)."""

from fastapi import APIRouter, Depends

from api.public import cross_site, health, home, intake, portal, portal_complaints, portal_verify

router = APIRouter()
for _module in (home, health, intake, portal, portal_complaints, portal_verify):
    router.include_router(_module.router, dependencies=[Depends(cross_site.refuse_cross_site_posts)])
