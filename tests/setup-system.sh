#!/usr/bin/env bash
# Debian packages the test suite exercises for real: SLURM (slurm-wlm, munge) for the cluster test,
# ParaView (pvbatch) under Xvfb for the render test, Qt's xcb libraries for napari under Xvfb (the
# annotation helper's test), and — where ../shared/tomopy (beside the project root) holds the
# TomoPy CPU wheel, as on CI — the single-precision FFTW that wheel loads (the Makefile installs the
# wheel). Installed once, as root (CI runs as root); elsewhere the tests that need them skip and say
# why.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$(id -u)" != 0 ]; then
  echo "setup-system: not root: the SLURM, ParaView, napari and TomoPy tests will skip"; exit 0
fi
need=()
command -v slurmctld >/dev/null || need+=(slurm-wlm)
command -v munged >/dev/null || need+=(munge)
command -v pvbatch >/dev/null || need+=(paraview python3-paraview)
command -v xvfb-run >/dev/null || need+=(xvfb xauth)
if [ -d "$root/../shared/tomopy" ] && ! dpkg -s libfftw3-single3 >/dev/null 2>&1; then
  need+=(libfftw3-single3)
fi
# Qt's xcb platform for napari (the annotation helper's test) under Xvfb
for lib in libxcb-cursor0 libxkbcommon-x11-0 libegl1 libgl1; do
  dpkg -s "$lib" >/dev/null 2>&1 || need+=("$lib")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-system: apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
