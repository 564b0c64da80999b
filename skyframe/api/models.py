"""/api/models: the catalogue, with what is available right now and why not."""

from __future__ import annotations

from fastapi import APIRouter

from skyframe.api.deps import PrincipalDep, ServicesDep
from skyframe.api.schemas import ModelList, ModelOut
from skyframe.catalogue import DEFAULT_MODEL, MODELS
from skyframe.providers import availability

router = APIRouter(prefix="/api", tags=["models"])


@router.get("/models", response_model=ModelList)
def list_models(services: ServicesDep, principal: PrincipalDep) -> ModelList:
    out = []
    limits = principal.limits
    for spec in MODELS.values():
        ok, reason = availability(spec, services.settings)
        if ok and spec.paid and limits is not None and not limits.allow_paid_models:
            ok, reason = False, "Your account may not use paid models; ask the administrator."
        out.append(
            ModelOut(
                key=spec.key,
                title=spec.title,
                provider=spec.provider,
                available=ok,
                unavailable_reason=reason,
                scales=list(spec.scales),
                resolutions=list(spec.resolutions),
                default_resolution=spec.default_resolution,
                hint=spec.hint,
                paid=spec.paid,
                is_default=spec.key == DEFAULT_MODEL,
            )
        )
    return ModelList(models=out)
