#!/usr/bin/env bash
# Install StoreHub on a Debian / Raspberry Pi OS machine as systemd services.
#
#   sudo systemd/install.sh [options]
#
# Creates the users and directories, installs StoreHub into a virtualenv (unless one exists),
# writes a starting config when there is none, renders the units with the paths below into
# /etc/systemd/system, and enables them. Safe to run again (upgrades re-render the units).
#
#   --prefix DIR       where releases live; the units run DIR/current/bin/storehub  [/opt/storehub]
#   --config FILE      the store's config                                           [/etc/storehub/store.toml]
#   --data-dir DIR     the hub's data directory (must match hub.data_dir)           [/var/lib/storehub]
#   --backup-dir DIR   backups, ideally on a second medium (USB stick, NAS)         [/var/backups/storehub]
#   --keep-days N      backup retention in days                                     [14]
#   --kds DEVICE_ID    run a kitchen screen for this KDS device (repeatable)
#   --kiosk-user USER  run Chromium in kiosk mode on USER's desktop session
#   --kiosk-url URL    what the kiosk shows (written to /etc/storehub/kiosk.env)   [http://127.0.0.1:8080/]
#   --with-relay       enable the relay to central (configure [relay] first)
#   --no-start         install and enable, but do not start anything now
#   --render-only DIR  only render the units and a starting store.toml into DIR (no root; the tests use it)
#   --bin DIR          directory holding the storehub executable (default PREFIX/current/bin)
#
#   --upgrade          back up the database, install this checkout as PREFIX/releases/<version>,
#                      point PREFIX/current at it (PREFIX/previous keeps the old one), restart
#   --rollback         point PREFIX/current back at PREFIX/previous and restart (if the new release
#                      migrated the database, also restore the pre-upgrade backup: docs/operations.md)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UNITS="$REPO/systemd"
PREFIX=/opt/storehub
CONFIG=/etc/storehub/store.toml
DATA_DIR=/var/lib/storehub
BACKUP_DIR=/var/backups/storehub
KEEP_DAYS=14
KIOSK_USER=""
KIOSK_URL=""
RUN_DIR=/run/storehub-broker  # RuntimeDirectory= of storehub-broker-reload; tests render another
RENDER_ONLY=""
BIN=""
WITH_RELAY=0
START=1
ACTION=install
KDS=()

die() { echo "install.sh: $*" >&2; exit 2; }
need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --prefix) need_value "$@"; PREFIX="$2"; shift 2 ;;
    --config) need_value "$@"; CONFIG="$2"; shift 2 ;;
    --data-dir) need_value "$@"; DATA_DIR="$2"; shift 2 ;;
    --backup-dir) need_value "$@"; BACKUP_DIR="$2"; shift 2 ;;
    --keep-days) need_value "$@"; KEEP_DAYS="$2"; shift 2 ;;
    --kds) need_value "$@"; KDS+=("$2"); shift 2 ;;
    --kiosk-user) need_value "$@"; KIOSK_USER="$2"; shift 2 ;;
    --kiosk-url) need_value "$@"; KIOSK_URL="$2"; shift 2 ;;
    --with-relay) WITH_RELAY=1; shift ;;
    --no-start) START=0; shift ;;
    --render-only) need_value "$@"; RENDER_ONLY="$2"; shift 2 ;;
    --bin) need_value "$@"; BIN="$2"; shift 2 ;;
    --run-dir) need_value "$@"; RUN_DIR="$2"; shift 2 ;;  # tests only
    --upgrade) ACTION=upgrade; shift ;;
    --rollback) ACTION=rollback; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

[[ -z "$KIOSK_URL" || "$KIOSK_URL" =~ ^https?://[^[:space:]]+$ ]] || die "--kiosk-url must be an http(s) URL, got $KIOSK_URL"
[[ "$KEEP_DAYS" =~ ^[1-9][0-9]*$ ]] || die "--keep-days must be a whole number of days ≥ 1, got $KEEP_DAYS"
for path in "$PREFIX" "$CONFIG" "$DATA_DIR" "$BACKUP_DIR" "$RUN_DIR"; do
  [[ "$path" == /* ]] || die "paths must be absolute, got $path"
  [[ "$path" != *[[:space:]]* ]] || die "paths must not contain spaces, got '$path'"
done
for id in "${KDS[@]}"; do
  [[ "$id" =~ ^[a-z0-9-]{1,32}$ ]] || die "--kds $id: device ids are [a-z0-9-]{1,32}"
done
BIN="${BIN:-$PREFIX/current/bin}"

# render SRC DEST: fill in the install paths (the only place the templates are rendered).
render() {
  sed -e "s|@BIN@|$BIN|g" -e "s|@CONFIG@|$CONFIG|g" -e "s|@DATA_DIR@|$DATA_DIR|g" \
      -e "s|@BACKUP_DIR@|$BACKUP_DIR|g" -e "s|@KEEP_DAYS@|$KEEP_DAYS|g" \
      -e "s|@KIOSK_USER@|${KIOSK_USER:-root}|g" -e "s|@RUN_DIR@|$RUN_DIR|g" "$1" > "$2"
  if grep -q '@[A-Z_]*@' "$2"; then die "$2: unrendered placeholder $(grep -o '@[A-Z_]*@' "$2" | head -1)"; fi
}

render_all() {
  local dest="$1"
  mkdir -p "$dest/mosquitto.service.d"
  for unit in "$UNITS"/*.service "$UNITS"/*.timer "$UNITS"/*.path; do
    render "$unit" "$dest/$(basename "$unit")"
  done
  render "$UNITS/mosquitto.service.d/storehub.conf" "$dest/mosquitto.service.d/storehub.conf"
}

# render_config DIR NAME: a starting store config (and menu) for a real store in DIR: Mosquitto
# under systemd on 1883 for the staff network, and no placeholder PINs (the hub refuses to start
# until the bootstrap PINs are changed).
render_config() {
  install -m 0640 "$REPO/config/menu.example.toml" "$1/menu.toml"
  sed -e "s|^data_dir = .*|data_dir = \"$DATA_DIR\"|" -e "s|^menu_file = .*|menu_file = \"menu.toml\"|" \
      -e "s|^managed = .*|managed = false|" -e "s|^host = .*|host = \"0.0.0.0\"|" -e "s|^port = .*|port = 1883|" \
      -e "s|^websockets_port = .*||" -e "s|^allow_placeholder_pins = .*|allow_placeholder_pins = false|" \
      "$REPO/config/store.example.toml" > "$1/$2.new"
  install -m 0640 "$1/$2.new" "$1/$2" && rm -f "$1/$2.new"
}

if [[ -n "$RENDER_ONLY" ]]; then
  render_all "$RENDER_ONLY"
  render_config "$RENDER_ONLY" store.toml
  echo "rendered units into $RENDER_ONLY"
  exit 0
fi

# restart_units: restart what runs StoreHub code (not Mosquitto, not the kiosk).
restart_units() {
  [[ $START -eq 1 ]] || { echo "not restarting (--no-start): systemctl restart storehub-hub when ready"; return; }
  systemctl daemon-reload
  systemctl try-restart storehub-hub.service storehub-relay.service 'storehub-kds@*.service'
}

# switch_release TARGET: PREFIX/current → TARGET, PREFIX/previous → the release current pointed at.
switch_release() {
  local old
  old="$(readlink "$PREFIX/current" || true)"
  [[ "$old" != "$1" ]] || die "$1 is already the current release"
  [[ -n "$old" ]] && ln -sfn "$old" "$PREFIX/previous.new" && mv -T "$PREFIX/previous.new" "$PREFIX/previous"
  ln -sfn "$1" "$PREFIX/current.new" && mv -T "$PREFIX/current.new" "$PREFIX/current"
  echo "current release: $1${old:+ (previous: $old)}"
}

if [[ $ACTION == rollback ]]; then
  previous="$(readlink "$PREFIX/previous" || true)"
  [[ -n "$previous" && -x "$previous/bin/storehub" ]] || die "no previous release in $PREFIX to roll back to"
  [[ $START -eq 0 || $(id -u) -eq 0 ]] || die "run as root (sudo $0 --rollback), or add --no-start"
  switch_release "$previous"
  restart_units
  exit 0
fi

PREVIEW_FONT=/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf  # print previews draw accents and € with it

if [[ $ACTION == upgrade ]]; then
  [[ $START -eq 0 || $(id -u) -eq 0 ]] || die "run as root (sudo $0 --upgrade), or add --no-start"
  if [[ $(id -u) -eq 0 && ! -f $PREVIEW_FONT ]]; then
    echo "installing fonts-dejavu-core"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-dejavu-core; } \
      || echo "warning: fonts-dejavu-core did not install; print previews draw accented letters as boxes" >&2
  fi
  version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -1)"
  release="$PREFIX/releases/$version"
  if [[ -x "$PREFIX/current/bin/storehub" && -f "$CONFIG" ]]; then
    echo "backing up the database before the upgrade"
    runner=()  # as root, run the backup as the database owner (the files it writes stay its own)
    if [[ $(id -u) -eq 0 ]] && id storehub >/dev/null 2>&1; then runner=(runuser -u storehub --); fi
    "${runner[@]}" "$PREFIX/current/bin/storehub" backup run --config "$CONFIG" --dest "$BACKUP_DIR" \
      --keep-days "$KEEP_DAYS" || die "the pre-upgrade backup failed: not upgrading"
  fi
  if [[ ! -x "$release/bin/storehub" ]]; then
    echo "installing StoreHub $version into $release"
    rm -rf "$release"  # a venv cannot be moved (absolute paths inside): build it in place, or remove it
    { python3 -m venv "$release" && "$release/bin/pip" install -q "$REPO"; } \
      || { rm -rf "$release"; die "installing StoreHub $version failed; the current release is unchanged"; }
  fi
  switch_release "$release"
  restart_units
  exit 0
fi

[[ $(id -u) -eq 0 ]] || die "run as root (sudo $0 …), or use --render-only DIR"
command -v systemctl >/dev/null || die "systemd is required"
missing=()
command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || missing+=(mosquitto python3-venv)
[[ -f $PREVIEW_FONT ]] || missing+=(fonts-dejavu-core)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

echo "users and directories"
getent group storehub >/dev/null || groupadd --system storehub
id storehub >/dev/null 2>&1 || useradd --system --gid storehub --home-dir "$DATA_DIR" --shell /usr/sbin/nologin storehub
id storehub-relay >/dev/null 2>&1 || useradd --system --user-group --no-create-home --shell /usr/sbin/nologin storehub-relay
install -d -m 0750 -o root -g storehub "$(dirname "$CONFIG")"
# setgid directories: everything the hub writes stays in the storehub group (Mosquitto, relay, backup).
install -d -m 2770 -o storehub -g storehub "$DATA_DIR" "$DATA_DIR/broker"
install -d -m 0750 -o storehub -g storehub "$BACKUP_DIR"

if [[ ! -x "$BIN/storehub" ]]; then
  version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -1)"
  release="$PREFIX/releases/$version"
  echo "installing StoreHub $version into $release"
  python3 -m venv "$release"
  "$release/bin/pip" install -q "$REPO"
  ln -sfn "$release" "$PREFIX/current"
fi

if [[ ! -f "$CONFIG" ]]; then
  echo "writing a starting config to $CONFIG (edit it: store id, name, staff PINs, tables)"
  render_config "$(dirname "$CONFIG")" "$(basename "$CONFIG")"
  chown root:storehub "$CONFIG" "$(dirname "$CONFIG")/menu.toml"
fi

echo "units"
render_all /etc/systemd/system
systemctl daemon-reload
enable=(storehub-broker-reload.path storehub-hub.service storehub-backup.timer mosquitto.service)
[[ $WITH_RELAY -eq 1 ]] && enable+=(storehub-relay.service)
for id in "${KDS[@]}"; do enable+=("storehub-kds@$id.service"); done
if [[ -n "$KIOSK_USER" ]]; then
  id "$KIOSK_USER" >/dev/null 2>&1 || die "--kiosk-user $KIOSK_USER: no such user"
  if [[ -n "$KIOSK_URL" ]]; then
    kiosk_env="$(dirname "$CONFIG")/kiosk.env"
    touch "$kiosk_env"
    grep -v '^STOREHUB_KIOSK_URL=' "$kiosk_env" > "$kiosk_env.new" || true
    echo "STOREHUB_KIOSK_URL=$KIOSK_URL" >> "$kiosk_env.new"
    install -m 0644 "$kiosk_env.new" "$kiosk_env" && rm -f "$kiosk_env.new"
  fi
  enable+=(storehub-kiosk.service)
fi
if [[ $START -eq 1 ]]; then
  systemctl enable --now "${enable[@]}"
else
  systemctl enable "${enable[@]}"
fi
echo "done: 'systemctl status storehub-hub', 'journalctl -u storehub-hub -f', '$BIN/storehub doctor --config $CONFIG'"
