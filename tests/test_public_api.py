"""Every public name of `bnlab` resolves to the object its module defines (the redesign moved them all)."""

import importlib

import pytest

import bnlab


@pytest.mark.parametrize("name", [name for name in bnlab.__all__ if name != "__version__"])
def test_public_name_resolves_to_its_module_object(name):
    module = importlib.import_module(bnlab._PUBLIC[name])
    assert getattr(bnlab, name) is getattr(module, name)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'bnlab' has no attribute 'runner'"):
        bnlab.runner  # noqa: B018
