"""Response models of the experiment routes and of a known viewer's next list."""

from __future__ import annotations

from datetime import datetime

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
    generation: str | None = Field(default=None, description="the build generation it is pinned to (null: none)")
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


class OverTime(BaseModel):
    """One variant at the end of one time bucket: its scored exposures served before `at`, cumulative."""

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {"at": "2026-12-01T21:00:00Z", "variant": "hybrid", "exposures": 120, "hits": 37, "hr@10": 0.3083}
            ]
        },
    )

    at: datetime = Field(description="the end of the bucket (UTC)")
    variant: str
    exposures: int = Field(description="the variant's scored exposures served before `at` (pending ones left out)")
    hits: int
    hr_at_10: float = Field(alias="hr@10", description="hits / exposures, cumulative")


class ExperimentReport(BaseModel):
    name: str
    salt: str
    control: str
    horizon_hours: float
    variants: dict[str, VariantReport]
    difference: Difference | None = Field(description="the first other variant against the control")
    differences: list[Difference]
    over_time_bucket_seconds: int | None = Field(
        default=None, description="the width of the buckets of `over_time` (60 s to 7 days; null: none yet)"
    )
    over_time: list[OverTime] = Field(
        default_factory=list,
        description="each variant's cumulative online HR@10 at the end of every time bucket that holds scored "
        "exposures, oldest first (the page's plot)",
        examples=[
            [
                {"at": "2026-12-01T21:00:00Z", "variant": "hybrid", "exposures": 120, "hits": 37, "hr@10": 0.3083},
                {"at": "2026-12-01T21:00:00Z", "variant": "sequential", "exposures": 118, "hits": 31, "hr@10": 0.2627},
                {"at": "2026-12-01T22:00:00Z", "variant": "hybrid", "exposures": 241, "hits": 70, "hr@10": 0.2905},
            ]
        ],
    )


class ExperimentList(BaseModel):
    experiments: list[ExperimentReport]
