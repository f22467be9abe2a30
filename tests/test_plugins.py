"""Plugins: a package declares implementations in its plugins.toml; lower packages resolve them by name."""

from __future__ import annotations

import importlib

import pytest

from nsync_bench.config import plugins
from nsync_bench.errors import UnknownNameError


def test_every_registered_plugin_resolves():
    table = plugins.plugin_table()
    assert set(table) == {"model_sources", "extractor_sources", "style_renderers", "metrics"}
    for group, rows in table.items():
        for name, target in rows.items():
            module, _, attribute = target.partition(":")
            target_object = getattr(importlib.import_module(module), attribute)
            if group == "metrics":  # a metric's row points at its module's MetricSpec
                assert target_object.name == name, f"{group}.{name}"
            else:
                assert callable(target_object), f"{group}.{name}"


def test_the_toy_world_registers_into_the_layers_below_it():
    assert plugins.plugin_names("model_sources") == ["toy-world"]
    from nsync_bench.world.extractors import toy_world_extractor
    from nsync_bench.world.targets import render_world_style

    assert plugins.load_plugin("extractor_sources", "toy-world", "extractor source") is toy_world_extractor
    assert plugins.load_plugin("style_renderers", "toy-world", "style renderer") is render_world_style


def test_an_unknown_plugin_is_a_teaching_error():
    with pytest.raises(UnknownNameError, match=r"model source 'toy-wrld'.*toy-world"):
        plugins.load_plugin("model_sources", "toy-wrld", "model source")


def test_a_name_registered_twice_is_refused(tmp_path, monkeypatch):
    for package in ("a", "b"):
        (tmp_path / package).mkdir()
        (tmp_path / package / plugins.PLUGIN_FILE).write_text('[model_sources]\nsame = "x:y"\n')
    monkeypatch.setattr(plugins, "_PACKAGE_DIR", tmp_path)
    plugins.plugin_table.cache_clear()
    try:
        with pytest.raises(plugins.ConfigError, match="registered twice"):
            plugins.plugin_table()
    finally:
        monkeypatch.undo()
        plugins.plugin_table.cache_clear()


def test_the_world_styles_name_their_renderer():
    from nsync_bench.data.styles import get_style, style_names

    world = [name for name in style_names() if name.startswith("world-")]
    assert world and all(get_style(name).renderer == "toy-world" for name in world)
    assert get_style("toy-pastel").renderer == ""


def test_a_row_naming_a_missing_module_or_attribute_is_a_teaching_error(monkeypatch):
    monkeypatch.setitem(plugins.plugin_table()["metrics"], "ghost", "nsync_bench.metrics.nothere:SPEC")
    with pytest.raises(plugins.ConfigError, match=r"plugin metrics.ghost = 'nsync_bench.metrics.nothere:SPEC'"):
        plugins.load_plugin("metrics", "ghost", "metric")
    monkeypatch.setitem(plugins.plugin_table()["metrics"], "ghost", "nsync_bench.metrics.fid:NOPE")
    with pytest.raises(plugins.ConfigError, match="cannot be loaded"):
        plugins.load_plugin("metrics", "ghost", "metric")
