"""``{{ }}`` references: finding and rendering them keeps types where AWS does."""

from __future__ import annotations

from airflow_ssm_delegate.documents.references import find_references, render


def test_find_references_in_nested_values() -> None:
    value = {"a": ["{{ P }}", {"b": "x-{{step.Out}}-{{ global:REGION }}"}], "c": 3}
    assert find_references(value) == ["P", "step.Out", "global:REGION"]


def test_render_keeps_type_for_whole_references_and_texts_inside_strings() -> None:
    values = {"ids": ["i-1", "i-2"], "n": 3, "flag": True, "name": "web"}
    rendered = render(
        {
            "ResourceIds": "{{ ids }}",
            "Count": "{{n}}",
            "Text": "ids={{ ids }} n={{ n }} f={{ flag }} {{ name }}",
        },
        values.__getitem__,
    )
    assert rendered == {
        "ResourceIds": ["i-1", "i-2"],
        "Count": 3,
        "Text": 'ids=["i-1", "i-2"] n=3 f=true web',
    }


def test_render_returns_a_copy() -> None:
    original = {"list": ["{{ x }}"]}
    rendered = render(original, lambda _: "y")
    assert rendered == {"list": ["y"]}
    assert original == {"list": ["{{ x }}"]}


def test_only_an_exact_reference_keeps_its_type() -> None:
    assert render(" {{ ids }}", {"ids": ["a"]}.__getitem__) == ' ["a"]'
    assert render("{{ids}}", {"ids": ["a"]}.__getitem__) == ["a"]
