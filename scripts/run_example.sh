#!/usr/bin/env bash
# Last step of `make run`: classify new simulated cells with the champion, then
# print what was built. New cells come from the same simulated biology as the
# training data (simulate.world_seed) but another cell seed, and are simulated
# again whenever params.yaml changes. With your own data (data.input) there is
# no matching example, so it only says how to classify your cells.
set -euo pipefail
input=data/example/new_cells.h5ad
output=predictions/example_predictions.csv
read -r model_name data_input example_seed < <(python - <<'PY'
from oncopersistnet.config import load_params
p = load_params()
print(p.register.model_name, p.data.input or "-", p.simulate.seed + 1000)
PY
)
model="models:/${model_name}@champion"
if [ "$data_input" != "-" ]; then
    echo "data.input is set ($data_input): no simulated example; classify your own cells with"
    echo "  make predict INPUT=cells.h5ad OUTPUT=predictions.csv"
    bash scripts/next_steps.sh "" "$model"
    exit 0
fi
mkdir -p "$(dirname "$input")"
if [ ! -f "$input" ] || [ params.yaml -nt "$input" ]; then
    oncopersistnet simulate --output "$input" --cells 500 --seed "$example_seed" --unlabelled
fi
oncopersistnet predict --input "$input" --output "$output" --model "$model" --no-progress
bash scripts/next_steps.sh "$output" "$model"
