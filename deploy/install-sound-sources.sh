#!/bin/sh
# Installs the allow-listed sound sources of the sound bank (../shared/SOUND_SOURCES.md):
#   install-sound-sources.sh [ci|full] [SOURCES_DIR] [PIP]
# - ci:   the few small Debian packages the test suite builds its bank from (~13 MB download).
# - full: every allow-listed package. Those with heavy dependencies, and widelands-data
#   (436 MB for 3.7 MB of sounds), are downloaded and unpacked under SOURCES_DIR/<package>/
#   (widelands-data: its sound folder only) instead of installed; keebsound (PyPI, sdist only)
#   is pip-installed without dependencies into the venv whose pip is PIP.
# SOURCES_DIR defaults to $DUALCAM_CACHE_DIR/sound-sources (or ~/.cache/dualcam-rt/sound-sources),
# where `dualcam-rt soundbank build` looks for unpacked packages. apt needs root; otherwise it stops
# with one line giving the command (apt-get download and the unpacking need no root).
set -eu

preset=${1:-full}
sources=${2:-${DUALCAM_CACHE_DIR:-$HOME/.cache/dualcam-rt}/sound-sources}
pip=${3:-.venv/bin/pip}

ci_packages="sound-theme-freedesktop yaru-theme-sound sound-icons lmms-common"
full_packages="$ci_packages hydrogen-drumkits gcompris-qt-data asterisk-core-sounds-en-wav
 tuxpaint-stamps-default ktuberling-data klettres-data fillets-ng-data lincity-ng-data"
unpacked_packages="kpat gnome-audio aisleriot 7kaa-data"

case "$preset" in
  ci) install=$ci_packages ;;
  full) install=$full_packages ;;
  *) echo "error: preset must be ci or full, got '$preset'" >&2; exit 2 ;;
esac

missing=""
for p in $install; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "the sound bank needs Debian packages; install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086  # one word per package
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

[ "$preset" = full ] || exit 0

mkdir -p "$sources"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for p in $unpacked_packages widelands-data; do
  [ -e "$sources/$p/.complete" ] && continue
  (cd "$work" && apt-get download "$p")
  rm -rf "$sources/$p.part" && mkdir -p "$sources/$p.part"
  if [ "$p" = widelands-data ]; then
    dpkg-deb --fsys-tarfile "$work"/widelands-data_*.deb |
      tar -x -C "$sources/$p.part" --wildcards './usr/share/games/widelands/data/sound/*' './usr/share/doc/widelands-data/*'
  else
    dpkg -x "$work"/"$p"_*.deb "$sources/$p.part"
  fi
  rm -f "$work"/*.deb
  touch "$sources/$p.part/.complete"
  rm -rf "$sources/$p" && mv "$sources/$p.part" "$sources/$p"
done

"$pip" show -q keebsound >/dev/null 2>&1 || "$pip" install -q --no-deps keebsound
