import pytest

from packager.errors import UsageError
from packager.spec import DimSpec, parse_input_spec


def test_static_and_dynamic_dims():
    spec = parse_input_spec("1..8x3x224x224:float32")
    assert spec.dims[0] == DimSpec(1, 8, 8)
    assert spec.dims[1:] == (DimSpec(3, 3, 3), DimSpec(224, 224, 224), DimSpec(224, 224, 224))
    assert spec.dtype == "float32" and not spec.is_static
    assert spec.example_shape == (8, 3, 224, 224)


def test_opt_dim_and_default_dtype():
    spec = parse_input_spec("2..4..16x7")
    assert spec.dims[0] == DimSpec(2, 4, 16) and spec.dtype == "float32"
    assert str(spec) == "2..4..16x7:float32"


@pytest.mark.parametrize(
    "text, message",
    [
        ("3x224:float", "unknown dtype 'float'"),
        ("3xx224", "bad dimension ''"),
        ("8..1x3", "LO <= OPT <= HI"),
        (":int64", "no dimensions"),
        ("1..2..3..4x3", "bad dimension"),
    ],
)
def test_bad_specs_say_what_is_wrong(text, message):
    with pytest.raises(UsageError, match=message):
        parse_input_spec(text)
