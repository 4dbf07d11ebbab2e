"""Response models of the experiment routes and of a known viewer's next list."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from services.api.history_schemas import NextAnswer

Interval = list[float] | None


class ViewerNextAnswer(NextAnswer):
    """`GET /users/{id}/next`: the next list, the request id its exposure is logged under, and the variant."""

    request_id: str = Field(description="the id the answer's exposure is logged under (X-Request-ID)")
    variant: str | None = Field(description="the experiment's variant that answered; null without one")


class VariantReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    strategy: str
    share: float
    stopped: bool
    degraded: bool = Field(description="the variant's strategy lacks a part here (`missing`)")
    missing: list[str]
    exposures: int = Field(description="answers served by the variant")
    pending: int = Field(description="exposures without a next watch yet, inside the horizon (not scored)")
    hits: int
    hr_at_10: float | None = Field(alias="hr@10")
    hr_at_10_ci: Interval = Field(alias="hr@10_ci", description="95% user-bootstrap interval")
    offline_hr_at_10: float | None = Field(alias="offline_hr@10", description="the history protocol's HR@10")
    offline_hr_at_10_ci: Interval = Field(alias="offline_hr@10_ci")


class Difference(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    variant: str
    against: str = Field(description="the control")
    hr_at_10: float | None = Field(alias="hr@10", description="the variant's HR@10 minus the control's")
    ci: Interval = Field(description="95% unpaired user-bootstrap interval (the variants' viewers are disjoint)")


class ExperimentReport(BaseModel):
    name: str
    salt: str
    control: str
    horizon_hours: float
    variants: dict[str, VariantReport]
    difference: Difference | None = Field(description="the first other variant against the control")
    differences: list[Difference]


class ExperimentList(BaseModel):
    experiments: list[ExperimentReport]
