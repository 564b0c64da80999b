"""Execution providers: ``local`` (our engine, offline) and ``replicate`` (hosted models)."""

from __future__ import annotations

from skyframe.catalogue import ModelSpec
from skyframe.config import Settings


def availability(spec: ModelSpec, settings: Settings) -> tuple[bool, str | None]:
    """Whether ``spec`` can run now, and if not, what the operator should do about it."""
    if spec.provider == "local":
        from skyframe.enhance.weights import WeightsError, ncnn_files

        try:
            ncnn_files(spec.weights or "")
        except WeightsError as exc:
            return False, exc.message
        return True, None
    from skyframe.providers.replicate import TOKEN_MISSING

    if settings.replicate_api_token is None or not settings.replicate_api_token.get_secret_value():
        return False, TOKEN_MISSING
    return True, None
