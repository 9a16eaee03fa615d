"""Deal pipelines: which HubSpot pipeline an Opportunity's deal belongs to, and which stage
map translates its stage there.

A HubSpot deal needs a ``pipeline`` and a ``dealstage`` of that pipeline; stage ids are unique
to their pipeline (custom pipelines' ids are numbers). The mapping's ``deal_pipelines`` section
picks the pipeline per Opportunity record type; this module turns it into plain field rules:
one rule writing ``pipeline`` from the record type (always Salesforce's), and per pipeline the
pair's rules with the stage rule's stage map swapped for that pipeline's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mapping.model import DealPipelines, Default, FieldRule, MappingFile, Rule, ValueMap

PIPELINE_PROPERTY = "pipeline"
STAGE_PROPERTY = "dealstage"


def deal_pipelines_of(mapping: MappingFile, pair_name: str) -> DealPipelines | None:
    routing = mapping.deal_pipelines
    return routing if routing is not None and routing.pair == pair_name else None


def pipeline_rule(routing: DealPipelines, record_types: Mapping[str, str]) -> FieldRule:
    """``RecordTypeId`` -> ``pipeline``: each record type id (``record_types``: id -> developer
    name, from describe) to its route's pipeline, every other one and none to the default."""
    by_name = routing.record_types
    values = {rid: (by_name[name].pipeline if name in by_name else routing.default.pipeline)
              for rid, name in sorted(record_types.items())}
    reverse: dict[str, str] = {}
    for rid, pipeline in values.items():
        reverse.setdefault(pipeline, rid)
    return FieldRule(salesforce=routing.record_type_field, hubspot=PIPELINE_PROPERTY,
                     rule=Rule.ALWAYS_SALESFORCE,
                     transforms=[ValueMap(kind="value_map", values=values, reverse=reverse),
                                 Default(kind="default", value=routing.default.pipeline)])


def is_stage_rule(mapping: MappingFile, hubspot_object: str, rule: FieldRule) -> bool:
    """The rule that carries Opportunity stages to ``dealstage`` through a stage map."""
    smap = mapping.stage_maps.get(rule.stage_map) if rule.stage_map else None
    return smap is not None and smap.hubspot_field == f"{hubspot_object}.{STAGE_PROPERTY}"


def routed_rules(mapping: MappingFile, routing: DealPipelines, hubspot_object: str,
                 rules: Sequence[FieldRule]) -> dict[str, list[FieldRule]]:
    """Pipeline id -> the rules to plan a deal of that pipeline with."""
    out: dict[str, list[FieldRule]] = {}
    for _, route in reversed(routing.routes()):  # the default wins a pipeline named twice
        out[route.pipeline] = [
            rule.model_copy(update={"stage_map": route.stage_map})
            if is_stage_rule(mapping, hubspot_object, rule) else rule for rule in rules]
    return out
