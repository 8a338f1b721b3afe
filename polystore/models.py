"""The typed records of the standard routes: sessions, user profiles, money transactions."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ISO_4217_CURRENCIES", "Session", "Transaction", "UserProfile"]

ISO_4217_CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR
    ZMW ZWG
    """.split()  # noqa: SIM905 - a table is easier to read than 180 quoted strings
)
"""Active ISO 4217 currency codes."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Session(BaseModel):
    """A user's session; lives in the ``sessions`` route, usually with a ttl."""

    model_config = ConfigDict(extra="forbid")
    __polystore_key__: ClassVar[str] = "id"

    id: str = Field(min_length=1, max_length=256)
    user_id: str = Field(min_length=1, max_length=256)
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=_now)


class UserProfile(BaseModel):
    """A user's profile document; lives in the ``profiles`` route."""

    model_config = ConfigDict(extra="forbid")
    __polystore_key__: ClassVar[str] = "user_id"

    user_id: str = Field(min_length=1, max_length=256)
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=320)
    display_name: str | None = Field(default=None, max_length=256)
    attributes: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)


class Transaction(BaseModel):
    """A money movement; lives in the ``transactions`` route.

    ``amount`` is a :class:`~decimal.Decimal` and is stored as a string, so it survives
    every backend exactly. Saving two transactions with the same ``idempotency_key``
    stores one.
    """

    model_config = ConfigDict(extra="forbid")
    __polystore_key__: ClassVar[str] = "id"

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=256)
    account_id: str = Field(min_length=1, max_length=256)
    amount: Decimal = Field(gt=0, max_digits=38, decimal_places=18)
    currency: str = Field(min_length=3, max_length=3)
    direction: Literal["debit", "credit"]
    status: Literal["pending", "posted", "failed", "reversed"] = "pending"
    idempotency_key: str = Field(min_length=1, max_length=256)
    description: str = Field(default="", max_length=1024)
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, value: str) -> str:
        if value not in ISO_4217_CURRENCIES:
            raise ValueError(f"{value!r} is not an active ISO 4217 currency code")
        return value

    @field_validator("amount")
    @classmethod
    def _finite(cls, value: Decimal) -> Decimal:
        if not value.is_finite():
            raise ValueError("amount must be a finite number")
        return value
