"""Typed tool inputs shared across servers; the constraints become the tools' JSON input schemas."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

Id = Annotated[int, Field(ge=1, strict=True, description="Numeric id of the item upstream.")]
"""Strict: a string, float or boolean is refused, so only a positive integer ever reaches a URL path."""
Page = Annotated[int | None, Field(ge=1, description="Page number, from 1.")]
PageSize = Annotated[int | None, Field(ge=1, description="Records per page.")]
Limit = Annotated[int | None, Field(ge=1, description="Most items to return.")]
Offset = Annotated[int | None, Field(ge=0, description="Items to skip first.")]
Text = Annotated[str, Field(min_length=1)]
Date = Annotated[str | None, Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD")]
