"""Deployment refuses a registered model whose artifact no longer matches its registration,
and loads nothing by pickle: only ONNX through onnxruntime and JSON/YAML metadata."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml

from oncopersistnet.errors import ModelError
from oncopersistnet.inference.model import OnnxPersisterModel
from oncopersistnet.registry.resolve import load_model

NAME = "integrity-test"
PROVENANCE = {"mlflow_run_id": "0123abcd", "git_commit": "feedbeef"}


@pytest.fixture()
def registered(fitted, trained, trust, store, small_adata) -> tuple[str, Path]:
    """A model registered the way the register stage does it; returns (tracking URI, its ONNX file in the
    store)."""
    import mlflow

    from oncopersistnet.export import export_onnx
    from oncopersistnet.model import save_checkpoint
    from oncopersistnet.registry.publish import log_and_register

    pre, _, _ = fitted
    onnx_path, checkpoint, preprocessor = store / "model.onnx", store / "model.pt", store / "preprocessor.npz"
    export_onnx(pre, trained.model, onnx_path, trust=trust, metadata={"threshold": 0.5, "data_hash": "test"})
    save_checkpoint(trained.model, checkpoint)
    pre.save(preprocessor)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment("integrity", artifact_location=(store / "artifacts").as_uri())
    )
    model = OnnxPersisterModel(onnx_path)
    example = np.asarray(small_adata.X[:2].toarray(), dtype=np.float32)
    with mlflow.start_run():
        log_and_register(
            onnx.load(str(onnx_path)),
            model,
            example,
            model_name=NAME,
            trainable_files=(checkpoint, preprocessor),
            provenance=PROVENANCE,
        )
    stored = [p for p in (store / "artifacts").rglob("model.onnx") if "models" in p.parts]
    assert len(stored) == 1
    return uri, stored[0]


def test_the_registered_model_loads(registered):
    for reference in (f"models:/{NAME}/1", f"models:/{NAME}/latest"):
        assert load_model(reference).source == reference


def test_the_registered_copy_carries_the_provenance_the_exported_file_lacks(registered, store):
    """The exported file (a DVC output) holds no run id or commit; the registered copy holds both,
    on the same graph and metadata otherwise."""
    _, stored = registered
    served = load_model(f"models:/{NAME}/1")
    assert {k: served.metadata[k] for k in PROVENANCE} == PROVENANCE
    local, copy = (onnx.load(str(p)) for p in (store / "model.onnx", stored))
    assert not set(PROVENANCE) & {p.key for p in local.metadata_props}
    assert {p.key: p.value for p in copy.metadata_props} == {
        p.key: p.value for p in local.metadata_props
    } | PROVENANCE
    assert copy.graph == local.graph


def test_a_swapped_gene_list_is_refused(registered):
    _, stored = registered
    proto = onnx.load(str(stored))
    for prop in proto.metadata_props:
        if prop.key == "genes":
            genes = json.loads(prop.value)
            prop.value = json.dumps([genes[1], genes[0], *genes[2:]])  # same width, two genes swapped
    onnx.save(proto, str(stored))
    with pytest.raises(ModelError, match=f"models:/{NAME}/1: its gene list differs from the one registered"):
        load_model(f"models:/{NAME}/1")


def test_a_changed_input_signature_is_refused(registered):
    _, stored = registered
    mlmodel = stored.parent / "MLmodel"
    spec = yaml.safe_load(mlmodel.read_text())
    spec["signature"]["inputs"] = json.dumps(
        [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 7]}}]
    )
    mlmodel.write_text(yaml.safe_dump(spec))
    with pytest.raises(
        ModelError, match="registered with an input signature of 7 genes, but its ONNX graph reads"
    ):
        load_model(f"models:/{NAME}/1")


def test_an_onnx_file_whose_input_disagrees_with_its_genes_is_refused(registered, tmp_path):
    _, stored = registered
    proto = onnx.load(str(stored))
    for prop in proto.metadata_props:
        if prop.key == "genes":
            prop.value = json.dumps(json.loads(prop.value)[:-1])
    onnx.save(proto, str(tmp_path / "edited.onnx"))
    with pytest.raises(ModelError, match="does not match its gene list"):
        OnnxPersisterModel(tmp_path / "edited.onnx")


AUDIT = textwrap.dedent(
    """
    import sys
    unpickled = []
    def audit(event, args):
        if event == "pickle.find_class":
            unpickled.append(args)
    sys.addaudithook(audit)

    import json, socket, threading, time, urllib.request
    import numpy as np
    import uvicorn
    from oncopersistnet.registry.resolve import load_model
    from oncopersistnet.config import shipped_params
    from oncopersistnet.inference.signal import SignalFloors
    from oncopersistnet.serving.app import ServiceConfig, create_app
    from oncopersistnet.tracking import use_tracking_uri

    use_tracking_uri(sys.argv[2])  # this script is the entry point: it chooses the store
    model = load_model(sys.argv[1])
    model.predict_proba(np.zeros((3, len(model.genes)), dtype=np.float32))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    predict = shipped_params().predict
    app = create_app(
        ServiceConfig(
            model=sys.argv[1],
            tracking_uri=sys.argv[2],
            min_gene_fraction=predict.min_gene_fraction,
            coverage=predict.coverage,
            ood_warn_fraction=predict.ood_warn_fraction,
            signal_floors=SignalFloors.from_params(predict),
        )
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/predict", data=json.dumps({"cells": [{model.genes[0]: 3.0}]}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.status == 200
    server.should_exit = True
    print("UNPICKLED", unpickled)
    """
)


def test_the_deployment_path_unpickles_nothing(registered):
    """An audit hook sees every class a pickle would load; loading, predicting and serving must trigger
    none."""
    uri, _ = registered
    result = subprocess.run(
        [sys.executable, "-c", AUDIT, f"models:/{NAME}/1", uri], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "UNPICKLED []" in result.stdout, result.stdout[-2000:]
