"""Models Kiro refused an account: a request for one goes to the other accounts for a while.

Kiro's INVALID_MODEL_ID for a model the account listed (or before its list came) marks that model in the
account's shared "model_refusals" field for MODEL_REFUSAL_TTL; which models an account may use follows from
its list and those marks (entitlement.py). A model no account may use is a 404 naming those that can be served.
"""
from __future__ import annotations

import logging
import time
from ..errors import ApiError, ModelNotFound
from .entitlement import refused_ids, servable_ids
from .protocols import AccountStates
from .roster import Account, Roster

log = logging.getLogger(__name__)

MODEL_REFUSED = "model_unavailable"  # the refusal kind of Kiro's INVALID_MODEL_ID: one model, not the account
MODEL_REFUSAL_TTL = 3600.0  # seconds an account is not offered a model Kiro refused it


class ModelRefusals(Roster):
    """The pool's marks of refused models, and the 404 for a model no account may use."""

    def refuse_model(self, account: Account, model: str, error: ApiError) -> None:
        """Kiro refused this account one model: offer it that model again only after MODEL_REFUSAL_TTL."""
        self.note_error(account, MODEL_REFUSED, error)
        now = time.time()
        fields = self.states(fresh=True).get(account.name, {})
        refused = refused_ids(fields, now)
        marks = {k: v for k, v in (fields.get("model_refusals") or {}).items() if k in refused}
        marks[model] = {"at": now, "until": now + MODEL_REFUSAL_TTL, "message": error.message[:300]}
        self.write(account.name, "model_refusals", marks)
        log.warning("Kiro account %s may not use the model %s (%s); that model goes to other accounts for %.0f s",
                    account.name, model, error.message, MODEL_REFUSAL_TTL)

    def not_entitled(self, model: str, states: AccountStates, now: float, last: ApiError | None = None
                     ) -> ModelNotFound:
        """The 404 for a model no account may use, naming the models that can be served (and Kiro's words, when
        this request's own refusal is why)."""
        servable = servable_ids((states.get(a.name, {}) for a in self.accounts if a.enabled), now)
        said = f" (Kiro: {last.message})" if last is not None else ""
        return ModelNotFound(f"No Kiro account may use the model {model!r}{said}. Models that can be served: "
                             f"{', '.join(servable) or 'none'}", param="model")
