"""The Open Inference Protocol's binary tensor data extension, checked with Triton's own client.

``tritonclient.http`` sends tensors as raw bytes after the JSON unless told otherwise, and asks
for outputs the same way; here it drives ``shipyard serve`` over a socket both ways, and its
encoder and decoder check the server's parser and writer. Bad bodies are sent in-process.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import shipyard
from shipyard.serving.protocols import V2_DATATYPES, parse_v2, split_binary_body, v2_binary_output
from tests._cli import ROOT
from tests.serving.conftest import AsgiClient, Trained, register, serve
from tests.serving.test_real_server import _free_port, _stop, _wait_until_ready

pytestmark = pytest.mark.integration
# the inference protocol; the prediction log on PostgreSQL: test_real_server.py
STORE_KINDS = ("sqlite",)

HEADER = "Inference-Header-Content-Length"
INFER = "/v2/models/cancer/infer"
SHIPYARD = "from shipyard.cli import main; main()"


# --- the real client against `shipyard serve` -----------------------------------------------


@dataclass
class Served:
    trained: Trained
    client: Any


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``shipyard serve cancer@champion`` on 127.0.0.1 (a SQLite workspace), and a client."""
    root = tmp_path_factory.mktemp("oip-binary")
    home = root / ".shipyard"
    home.mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SHIPYARD_HOME", str(home))
        env.setenv("SHIPYARD_STORE_URL", f"sqlite:///{root / 'store' / 'shipyard.db'}")
        env.setenv("SHIPYARD_USER", "alice")
        env.delenv("SHIPYARD_ARTIFACTS_URL", raising=False)
        env.chdir(root)
        trained = register(home)
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, "-c", SHIPYARD, "serve", "cancer@champion", "--port", str(port)],
            env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_until_ready(f"http://127.0.0.1:{port}/v2/health/ready", process)
            client = triton.InferenceServerClient(f"127.0.0.1:{port}")
            try:
                yield Served(trained, client)
            finally:
                client.close()
        finally:
            _stop(process)


def test_the_client_reads_health_and_metadata(served: Served) -> None:
    client = served.client
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("cancer")
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    inputs = client.get_model_metadata("cancer")["inputs"]
    assert [i["name"] for i in inputs] == list(served.trained.x.columns)


@pytest.mark.parametrize(
    ("datatype", "binary_input"), [("FP64", False), ("FP64", True), ("FP32", True)]
)
@pytest.mark.parametrize("binary_output", [False, True])
def test_the_client_infers_with_json_or_binary_tensors(
    served: Served, datatype: str, binary_input: bool, binary_output: bool
) -> None:
    x = served.trained.x.head(50).to_numpy().astype(V2_DATATYPES[datatype])
    tensor = triton.InferInput("x", list(x.shape), datatype)
    tensor.set_data_from_numpy(x, binary_data=binary_input)
    outputs = [
        triton.InferRequestedOutput("predict", binary_data=binary_output),
        triton.InferRequestedOutput("predict_proba", binary_data=binary_output),
    ]
    result = served.client.infer("cancer", [tensor], outputs=outputs, request_id="r1")
    clf = served.trained.clf
    frame = served.trained.x.head(50).astype(x.dtype).astype("float64")  # as the server casts
    assert result.get_response()["id"] == "r1"
    assert result.as_numpy("predict").tolist() == clf.predict(frame).tolist()
    np.testing.assert_allclose(result.as_numpy("predict_proba"), clf.predict_proba(frame))
    answered = result.get_response()["outputs"]
    sizes = {o["name"]: o.get("parameters", {}).get("binary_data_size") for o in answered}
    assert sizes == (
        {"predict": 50 * 8, "predict_proba": 50 * 2 * 8}
        if binary_output
        else {"predict": None, "predict_proba": None}
    )


def test_the_client_asks_for_binary_outputs_by_default(served: Served) -> None:
    rows = served.trained.x.head(3)
    tensor = triton.InferInput("x", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows.to_numpy(), binary_data=False)
    result = served.client.infer("cancer", [tensor])  # no outputs named: binary_data_output
    (output,) = result.get_response()["outputs"]
    assert output["parameters"] == {"binary_data_size": 3 * 8}
    assert result.as_numpy("predict").tolist() == served.trained.clf.predict(rows).tolist()


def test_json_and_binary_inputs_mix_and_keep_their_order(served: Served) -> None:
    x = served.trained.x.head(4)
    tensors = []
    for i, column in enumerate(reversed(x.columns)):  # named: any order
        tensor = triton.InferInput(column, [4], "FP64")
        tensors.append(tensor.set_data_from_numpy(x[column].to_numpy(), binary_data=i % 3 > 0))
    result = served.client.infer("cancer", tensors)
    assert result.as_numpy("predict").tolist() == served.trained.clf.predict(x).tolist()


# --- in-process: what the server answers, and bad bodies ------------------------------------


def _binary(header: dict[str, Any], *tensors: bytes, length: Any = None) -> dict[str, Any]:
    """httpx arguments for a body of ``header`` as JSON, then ``tensors``."""
    text = json.dumps(header).encode()
    size = len(text) if length is None else length
    return {"content": text + b"".join(tensors), "headers": {HEADER: str(size)}}


def _input(name: str, shape: list[int], datatype: str, size: int) -> dict[str, Any]:
    return {
        "name": name,
        "shape": shape,
        "datatype": datatype,
        "parameters": {"binary_data_size": size},
    }


def _strings(*texts: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(t)) + t for t in texts)


def test_binary_answer_has_its_header_and_json_answer_is_unchanged(
    client: AsgiClient, trained: Trained
) -> None:
    rows = trained.x.head(2)
    x = rows.to_numpy()
    header = {
        "inputs": [_input("x", [2, 30], "FP64", x.nbytes)],
        "outputs": [
            {"name": "predict_proba", "parameters": {"binary_data": True}},
            {"name": "predict"},
        ],
    }
    response = client.post(INFER, **_binary(header, x.tobytes()))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers[HEADER])
    answer = json.loads(response.content[:length])
    proba, predict = answer["outputs"]
    assert proba["parameters"] == {"binary_data_size": 2 * 2 * 8} and "data" not in proba
    assert predict["data"] == trained.clf.predict(rows).tolist()
    assert len(response.content) == length + 32
    np.testing.assert_allclose(
        np.frombuffer(response.content[length:], "<f8").reshape(2, 2),
        trained.clf.predict_proba(rows),
    )

    plain = client.post(
        INFER,
        json={"inputs": [{"name": "x", "shape": [2, 30], "datatype": "FP64", "data": x.tolist()}]},
    )
    assert plain.headers["content-type"] == "application/json" and HEADER not in plain.headers
    assert plain.json()["outputs"][0]["data"] == trained.clf.predict(rows).tolist()


def _one_tensor(datatype: str, size: int) -> dict[str, Any]:
    return {"inputs": [_input("x", [2, 30], datatype, size)]}


@pytest.mark.parametrize(
    ("request_", "names"),
    [
        (_binary(_one_tensor("FP64", 479), bytes(479)), ["'x'", "FP64", "[2, 30]", "480", "479"]),
        (_binary(_one_tensor("FP32", 480), bytes(480)), ["'x'", "FP32", "240", "480"]),
        (_binary(_one_tensor("FP64", 480), bytes(400)), ["'x'", "480", "only 400"]),
        (_binary(_one_tensor("FP64", 480), bytes(490)), ["10 bytes", "belong to no input"]),
        (_binary(_one_tensor("FP64", 480), bytes(480), length=10**6), [HEADER, "1000000"]),
        (_binary(_one_tensor("FP64", 480), bytes(480), length="abc"), [HEADER, "'abc'"]),
        (_binary(_one_tensor("FP64", 480), bytes(480), length="-5"), [HEADER, "'-5'"]),
        (_binary(_one_tensor("FP64", -1)), ["'x'", "binary_data_size", "-1"]),
        (_binary(_one_tensor("FP64", 480), bytes(480), length=3), ["not valid JSON"]),
        (
            {"json": _one_tensor("FP64", 480)},
            ["'x'", "binary_data_size", HEADER],
        ),
        (
            _binary(
                {"inputs": [_input("x", [2, 30], "FP64", 480) | {"data": [0.0] * 60}]}, bytes(480)
            ),
            ["'x'", "both 'data' and binary_data_size"],
        ),
        (
            _binary(
                _one_tensor("FP64", 480) | {"parameters": {"binary_data_output": "yes"}}, bytes(480)
            ),
            ["binary_data_output", "true or false"],
        ),
        (
            _binary(
                _one_tensor("FP64", 480)
                | {"outputs": [{"name": "predict", "parameters": {"binary_data": 1}}]},
                bytes(480),
            ),
            ["outputs[0]", "binary_data", "true or false"],
        ),
        (
            _binary({"inputs": [_input("flags", [2], "BOOL", 2)]}, b"\x01\x02"),
            ["'flags'", "BOOL", "0 or 1"],
        ),
    ],
)
def test_bad_binary_requests_are_400_saying_what_to_fix(
    client: AsgiClient, request_: dict[str, Any], names: list[str]
) -> None:
    response = client.post(INFER, **request_)
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    for name in names:
        assert name in message


@pytest.mark.parametrize(
    ("data", "names"),
    [
        (_strings(b"big", b"small"), ["'mean radius'"]),  # read, then refused by the signature
        (_strings(b"big") + b"\x05\x00\x00\x00sm", ["'mean radius'", "element 1", "runs past"]),
        (_strings(b"big") + b"\x05\x00", ["'mean radius'", "element 1"]),
        (_strings(b"big", b"\xff\xfe"), ["'mean radius'", "element 1", "not UTF-8"]),
        (_strings(b"big"), ["'mean radius'", "2 values", "1 values"]),
    ],
)
def test_bytes_tensors_are_read_or_refused_naming_the_input(
    client: AsgiClient, trained: Trained, data: bytes, names: list[str]
) -> None:
    x = trained.x.head(2)
    columns = [c for c in x.columns if c != "mean radius"]
    numbers = [x[c].to_numpy() for c in columns]
    header = {
        "inputs": [_input("mean radius", [2], "BYTES", len(data))]
        + [_input(c, [2], "FP64", 16) for c in columns]
    }
    response = client.post(INFER, **_binary(header, data, *(n.tobytes() for n in numbers)))
    assert response.status_code == 400, response.text
    message = response.json()["error"]
    for name in names:
        assert name in message


def _towns(home: Path) -> tuple[Any, Any]:
    """A model that takes a text column and answers text labels, registered as towns@1."""
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame(
        {"city": ["Oslo", "Lima", "Kyiv", "Perth"] * 10, "x": np.linspace(0, 1, 40)}
    )
    labels = np.where(frame["city"].isin(["Oslo", "Kyiv"]), "north", "south")
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["city"]), remainder="passthrough"),
        LogisticRegression(),
    ).fit(frame, labels)
    with shipyard.start_run(experiment="serving", log_code=False) as run:
        run.log_model(model, "towns", input_example=frame.head())
    return frame, model


def test_bytes_tensors_in_and_out(home: Path) -> None:
    frame, model = _towns(home)
    rows = frame.head(4)
    cities = triton.InferInput("city", [4], "BYTES")
    cities.set_data_from_numpy(rows["city"].to_numpy(dtype=object))
    x = triton.InferInput("x", [4], "FP64")
    x.set_data_from_numpy(rows["x"].to_numpy())
    body, length = triton.InferenceServerClient.generate_request_body([cities, x])
    client = serve(refs=["towns@1"])
    try:
        response = client.post(
            "/v2/models/towns/infer", content=body, headers={HEADER: str(length)}
        )
    finally:
        client.close()
    assert response.status_code == 200, response.text
    result = triton.InferenceServerClient.parse_response_body(
        response.content, header_length=int(response.headers[HEADER])
    )
    assert result.get_output("predict")["datatype"] == "BYTES"
    assert [v.decode() for v in result.as_numpy("predict")] == model.predict(rows).tolist()


# --- the codec against the client's, for every datatype -------------------------------------

_NUMERIC = [name for name in V2_DATATYPES if name != "BYTES"]
_SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4)


@st.composite
def _tensors(draw: st.DrawFn) -> tuple[str, np.ndarray[Any, Any]]:
    datatype = draw(st.sampled_from([*_NUMERIC, "BYTES"]))
    shape = draw(_SHAPES)
    if datatype == "BYTES":
        texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=5)
        values = draw(st.lists(texts, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return datatype, array.reshape(shape)
    return datatype, draw(hnp.arrays(np.dtype(V2_DATATYPES[datatype]), shape))


@given(_tensors())
def test_what_the_client_encodes_is_read_back(tensor: tuple[str, np.ndarray[Any, Any]]) -> None:
    datatype, array = tensor
    encoded = triton.InferInput("t", list(array.shape), datatype).set_data_from_numpy(array)
    body, length = triton.InferenceServerClient.generate_request_body([encoded])
    header, data = split_binary_body(body, str(length).encode())
    read = parse_v2(json.loads(header), None, data).data
    assert read.shape == array.shape and read.dtype == array.dtype
    np.testing.assert_array_equal(read, array)


@given(_tensors())
def test_what_the_server_encodes_the_client_decodes(
    tensor: tuple[str, np.ndarray[Any, Any]],
) -> None:
    datatype, array = tensor
    output, raw = v2_binary_output("t", array)
    header = json.dumps({"outputs": [output]}).encode()
    result = triton.InferenceServerClient.parse_response_body(
        header + raw, header_length=len(header)
    )
    decoded = result.as_numpy("t")
    assert output["datatype"] == datatype and list(decoded.shape) == list(array.shape)
    if datatype == "BYTES":
        assert [v.decode() for v in decoded.ravel()] == array.ravel().tolist()
    else:
        np.testing.assert_array_equal(decoded, array)
