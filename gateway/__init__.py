"""Outpost: a Convex-compatible reactive backend for edge gateways.

The app author's API (spec/python-api.md) is exactly what this module exports.
"""

from gateway.config import Settings
from gateway.errors import ConvexError
from gateway.gateway import Gateway
from gateway.mqtt.routes import mqtt_router
from gateway.runtime.crons import cron_jobs
from gateway.runtime.functions import (
    action,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
)
from gateway.runtime.http_router import http_action, http_router
from gateway.schema import define_schema, define_table, pagination_opts, v
from gateway.values import UNSET, Int64

__all__ = [
    "UNSET",
    "ConvexError",
    "Gateway",
    "Int64",
    "Settings",
    "action",
    "cron_jobs",
    "define_schema",
    "define_table",
    "http_action",
    "http_router",
    "internal_action",
    "internal_mutation",
    "internal_query",
    "mqtt_router",
    "mutation",
    "pagination_opts",
    "query",
    "v",
]
