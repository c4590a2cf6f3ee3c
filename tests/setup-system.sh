#!/usr/bin/env bash
# Debian packages the test suite exercises for real: SLURM (slurm-wlm, munge) for the cluster test,
# ParaView (pvbatch) under Xvfb for the render test, napari (Qt) under Xvfb for the annotation helper. Installed once, as root (CI runs as root);
# elsewhere the tests that need them skip and say why.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "setup-system: not root: the SLURM and ParaView tests will skip"; exit 0
fi
need=()
command -v slurmctld >/dev/null || need+=(slurm-wlm)
command -v munged >/dev/null || need+=(munge)
command -v pvbatch >/dev/null || need+=(paraview python3-paraview)
command -v xvfb-run >/dev/null || need+=(xvfb xauth)
# Qt's xcb platform for napari (the annotation helper's test) under Xvfb
for lib in libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1; do
  dpkg -s "$lib" >/dev/null 2>&1 || need+=("$lib")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-system: apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
