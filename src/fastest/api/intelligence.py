"""Next steps, decisions and drift analysis (seed 001, issue 13)."""

from fastapi import APIRouter

router = APIRouter(tags=["intelligence"])
