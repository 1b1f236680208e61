"""Metadata and detection: what ``syftflwr transports`` and auto-detection rely on, and
that neither imports the transport's heavy libraries."""

from __future__ import annotations

from syftflwr.config.options import coerce_option
from syftflwr.info import SUPPORTED_PLUGIN_API_VERSIONS, Detection
from syftflwr.names import validate_identifier
from syftflwr.registry import Transport, detection_context
from syftflwr.testing.conformance.base import ConformanceBase
from syftflwr.testing.probe import CORE_HEAVY_MODULES, probe


class MetadataConformance(ConformanceBase):
    """TransportInfo, options, detection, and light hook modules."""

    def test_info_describes_the_transport(self, transport: Transport) -> None:
        info = transport.info
        assert info.name == transport.entry.name
        assert info.api_version in SUPPORTED_PLUGIN_API_VERSIONS
        assert info.description.strip(), "describe the transport in one line (listings show it)"
        caps = info.capabilities
        assert caps.notifies_arrivals or (caps.poll_interval or 0) > 0
        if caps.max_object_size is not None:
            assert caps.max_object_size > 0, "max_object_size must be positive (or None)"
        assert caps.profiles, "declare at least one wire profile (usually 'native')"

    def test_options_are_valid_and_their_defaults_parse(self, transport: Transport) -> None:
        names = [spec.name for spec in transport.info.options]
        assert len(names) == len(set(names)), f"duplicate option names: {names}"
        for spec in transport.info.options:
            validate_identifier(spec.name, "option name")
            assert spec.help.strip(), f"option {spec.name!r} needs help text (docs show it)"
            if spec.required:
                continue
            if spec.default is not None:
                value = coerce_option(spec, spec.default)
                if spec.choices is not None:
                    assert value in spec.choices

    def test_detection_answers_without_raising(self, transport: Transport) -> None:
        detection = transport.detect(detection_context(transport))
        assert isinstance(detection, Detection)
        assert detection.reason.strip(), "say why the transport is (not) usable here"

    def test_listing_and_detection_import_nothing_heavy(self, transport: Transport) -> None:
        entry = transport.entry
        result = probe(entry.name, entry.target)
        assert result.error is None, f"listing/detecting {entry.name} failed: {result.error}"
        assert not result.listing_imported_plugin, "listing by metadata imported the plugin"
        heavy = result.heavy((*CORE_HEAVY_MODULES, *self.heavy_modules))
        assert not heavy, (
            f"listing or detecting {entry.name!r} imports {sorted(heavy)} "
            f"({', '.join(m for ms in heavy.values() for m in ms[:3])}): every "
            "`syftflwr transports` pays for that. Import those libraries inside the role "
            "factories (syftflwr_make_client/rpc/events), not in the hook module"
        )
