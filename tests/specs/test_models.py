"""Model specs: published parameter counts and KV sizes, the HF config loader, name lookups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from servesim.errors import InputError, UnknownNameError
from servesim.specs import from_hf_config, get_gpu, get_model, load_hf_config, model_names

MODELS_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "models"
GIB = 1024**3

# (catalog name, published total parameters, published active parameters) in billions.
PUBLISHED_PARAMS = [
    ("llama-2-7b", 6.74, 6.74),
    ("llama-2-13b", 13.0, 13.0),
    ("llama-2-70b", 68.98, 68.98),
    ("llama-3.1-8b", 8.03, 8.03),
    ("llama-3.1-70b", 70.6, 70.6),
    ("llama-3.1-405b", 405.9, 405.9),
    ("mixtral-8x7b", 46.7, 12.9),
    ("deepseek-v3", 671.0, 37.0),
    ("qwen2.5-32b", 32.8, 32.8),
    ("qwen3-32b", 32.8, 32.8),
    ("opt-13b", 12.85, 12.85),
    ("opt-66b", 65.7, 65.7),
    ("opt-175b", 174.6, 174.6),
]


@pytest.mark.parametrize(("name", "total_b", "active_b"), PUBLISHED_PARAMS)
def test_parameter_counts_match_published(name: str, total_b: float, active_b: float) -> None:
    model = get_model(name)
    assert model.num_params / 1e9 == pytest.approx(total_b, rel=0.015)
    assert model.num_active_params / 1e9 == pytest.approx(active_b, rel=0.02)


@pytest.mark.parametrize(
    ("name", "kv_bytes"),
    [
        ("llama-2-7b", 2 * 32 * 32 * 128 * 2),  # MHA: 0.5 MiB per token
        ("llama-3.1-70b", 2 * 80 * 8 * 128 * 2),  # GQA with 8 KV heads
        ("mixtral-8x7b", 2 * 32 * 8 * 128 * 2),
        ("deepseek-v3", 61 * (512 + 64) * 2),  # MLA latent + rope key
    ],
)
def test_kv_bytes_per_token(name: str, kv_bytes: int) -> None:
    assert get_model(name).kv_bytes_per_token == kv_bytes


def test_opt_66b_kv_of_512_tokens_is_1_13_gib() -> None:
    assert get_model("opt-66b").kv_bytes_per_token * 512 / GIB == pytest.approx(1.125, rel=1e-9)


def test_lookup_by_hf_id_and_case() -> None:
    assert get_model("meta-llama/Llama-2-7b-hf").name == "llama-2-7b"
    assert get_model("OPT-13B").name == "opt-13b"


def test_unknown_model_lists_closest_names() -> None:
    with pytest.raises(UnknownNameError) as err:
        get_model("llama-2-8b")
    assert "llama-2-7b" in str(err.value) and "closest" in str(err.value)


def test_unknown_gpu_lists_closest_names() -> None:
    with pytest.raises(UnknownNameError) as err:
        get_gpu("h100-sxm5")
    assert "h100-sxm" in str(err.value)


def test_small_inline_llama_config() -> None:
    spec = from_hf_config(
        {
            "model_type": "llama",
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": 128,
            "vocab_size": 100,
        }
    )
    layer = 64 * (64 + 2 * 32) + 64 * 64 + 3 * 64 * 128 + 2 * 64
    assert spec.num_params == 2 * layer + 2 * 100 * 64 + 64
    assert spec.kv_bytes_per_token == 2 * 2 * 2 * 16 * 2
    assert spec.head_dim == 16 and spec.max_context_tokens == 2048


def test_inline_mixtral_config_counts_active_experts() -> None:
    base = {
        "model_type": "mixtral",
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "intermediate_size": 64,
        "vocab_size": 10,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
    }
    spec = from_hf_config(base)
    inactive = 2 * 3 * 32 * 64
    assert spec.num_params - spec.num_active_params == inactive


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "gpt2", "hidden_size": 8},
        {"model_type": "llama", "num_hidden_layers": 2},
        {
            "model_type": "llama",
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 6,
            "num_key_value_heads": 4,
            "intermediate_size": 128,
            "vocab_size": 100,
        },
    ],
)
def test_bad_inline_configs_raise_input_error(config: dict[str, object]) -> None:
    with pytest.raises(InputError):
        from_hf_config(config)


def test_malformed_config_json(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama",')
    with pytest.raises(InputError, match="valid JSON"):
        load_hf_config(path)
    with pytest.raises(InputError, match=r"existing config\.json"):
        load_hf_config(tmp_path / "missing.json")


@pytest.mark.skipif(not MODELS_DIR.is_dir(), reason=f"shared model configs {MODELS_DIR} are absent")
@pytest.mark.parametrize(
    "file_name",
    [
        "llama-2-7b",
        "llama-2-13b",
        "llama-2-70b",
        "llama-3.1-8b",
        "llama-3.1-70b",
        "llama-3.1-405b",
        "mixtral-8x7b",
        "qwen2.5-32b",
        "qwen3-32b",
        "deepseek-v3",
    ],
)
def test_shared_configs_load_like_the_catalog(file_name: str) -> None:
    path = MODELS_DIR / f"{file_name}.json"
    if not path.is_file():
        pytest.skip(f"{path} absent")
    loaded = load_hf_config(path)
    catalog = get_model(file_name)
    assert loaded.num_params == catalog.num_params
    assert loaded.kv_bytes_per_token == catalog.kv_bytes_per_token
    assert json.loads(path.read_text())["model_type"] == loaded.model_type


def test_catalog_has_the_issue_models() -> None:
    assert {
        "opt-13b",
        "opt-66b",
        "opt-175b",
        "llama-2-7b",
        "llama-3.1-405b",
        "mixtral-8x7b",
        "qwen2.5-32b",
        "qwen3-32b",
        "deepseek-v3",
    } <= set(model_names())


def test_fp4_weights_keep_an_fp8_kv_cache_and_fp4_kv_is_refused() -> None:
    base = get_model("llama-3.1-70b")
    fp4 = base.with_precision("fp4")
    assert fp4.bytes_per_param == 0.5625  # 4 bits plus one fp8 scale per 16 values
    assert fp4.kv_bytes_per_element == 1 and fp4.weight_bytes < base.weight_bytes / 3
    assert fp4.with_precision(kv="bf16").kv_bytes_per_element == 2
    with pytest.raises(InputError, match="kv_dtype"):
        base.with_precision(kv="fp4")


def test_int4_weights_are_w4a16_with_a_bf16_kv_cache() -> None:
    base = get_model("kimi-k2.5")
    int4 = base.with_precision("int4")
    assert int4.bytes_per_param == 0.5625  # 4 bits plus one bf16 scale per group of 32
    assert (
        int4.kv_bytes_per_element == 2 and int4.with_precision(kv="fp8").kv_bytes_per_element == 1
    )
    with pytest.raises(InputError, match="kv_dtype"):
        base.with_precision(kv="int4")
