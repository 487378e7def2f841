"""Operators of nango-provider."""

from __future__ import annotations
