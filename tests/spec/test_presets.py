"""The shipped presets that are variants of others: each differs from its twin where it says."""

from __future__ import annotations

import pytest

import hierot
from hierot.registry import presets
from hierot.spec.loading import load_spec

FASHION = ["stackedwae", "stackedwae-z8", "wae", "hvae", "lvae"]


def test_the_fashion_presets_are_the_five_mnist_families():
    mnist = {n.removeprefix("mnist-") for n in presets.names() if n.startswith("mnist-")}
    fashion = {n.removeprefix("fashion-") for n in presets.names() if n.startswith("fashion-")}
    assert fashion == {f"{family}.v1" for family in FASHION} <= mnist


@pytest.mark.parametrize("family", FASHION)
def test_fashion_preset_is_its_mnist_twin_on_fashion_mnist(family):
    """``fashion-X.v1`` resolves to ``mnist-X.v1`` with ``data: {name: fashion-mnist}``: same
    networks, objective, weights, divergence, optimiser and budget; only the description differs."""
    fashion = hierot.load_spec(f"fashion-{family}.v1").model_dump(mode="json")
    mnist = hierot.load_spec(f"mnist-{family}.v1").model_dump(mode="json")
    assert fashion["data"]["name"] == "fashion-mnist" and mnist["data"]["name"] == "mnist"
    assert "Fashion-MNIST" in fashion["description"]
    assert fashion["description"] != mnist["description"]
    for spec in (fashion, mnist):
        spec.pop("description")
        spec["data"].pop("name")
    assert fashion == mnist
    twin = load_spec(f"mnist-{family}.v1", ["data={name: fashion-mnist}"])
    assert hierot.load_spec(f"fashion-{family}.v1").model_copy(
        update={"description": twin.description}) == twin
