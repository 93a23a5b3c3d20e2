#!/bin/sh
# Outpost as a service on Debian 12 / Raspberry Pi OS (arm64, armhf, x86-64).
#
#   sudo sh deploy/install.sh                  install, or upgrade to this checkout
#   sudo sh deploy/install.sh --from FILE      ... from a wheel or sdist instead
#   sudo sh deploy/install.sh --app DIR        ... and install DIR as the app
#   sudo sh deploy/install.sh --rollback       back to the last good release
#   sudo sh deploy/install.sh --uninstall [--purge]
#
# Idempotent: a second run with the same source changes nothing. docs/install.md says
# what it creates and why; every path is fixed (the unit names them).
set -eu

PREFIX=/opt/outpost
RELEASES=$PREFIX/releases
CURRENT=$PREFIX/venv        # symlink to releases/ID: the unit's ExecStart goes through it
PREVIOUS=$PREFIX/previous   # symlink to the last good release, for a rollback
SYNC=$PREFIX/bin/outpost-mosquitto-sync
ETC=/etc/outpost
APP=$ETC/app
TOML=$ETC/outpost.toml
MQTT_ENV=$ETC/mqtt.env
DATA=/var/lib/outpost
BACKUPS=$DATA/backups
KEEP_BACKUPS=3
ACCOUNT=outpost
UNITS=/etc/systemd/system
UNIT_FILES="outpost.service outpost-mosquitto.service outpost-mosquitto.path"
ENABLED_UNITS="mosquitto.service outpost.service outpost-mosquitto.path"
DROP_IN_DIR=$UNITS/outpost.service.d
MOSQUITTO_FILES=/etc/mosquitto/outpost
MOSQUITTO_DROP_IN=/etc/mosquitto/conf.d/outpost.conf
AVAHI_SERVICES=/etc/avahi/services
AVAHI_OVERRIDE="root $ACCOUNT 1775 $AVAHI_SERVICES"  # dpkg-statoverride --list's line
PACKAGES="python3-venv mosquitto"

HERE=$(cd "$(dirname "$0")" && pwd)
CHECKOUT=$(dirname "$HERE")

say() { printf 'outpost-install: %s\n' "$*"; }
die() { printf 'outpost-install: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,11s/^# \{0,1\}//p' "$0"
}

# systemd runs as PID 1 (sd_booted(3)); not in a chroot, a container or this sandbox.
systemd_running() { [ -d /run/systemd/system ]; }

# Run a command quietly; on failure show what it printed and stop.
quietly() {
    log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        rm -f "$log"
        die "failed: $*"
    fi
    rm -f "$log"
}

as_outpost() { runuser -u "$ACCOUNT" -- "$@"; }

# --- checks ------------------------------------------------------------------------

preflight() {
    [ "$(id -u)" = 0 ] || die "run it as root: sudo sh $0"
    command -v apt-get >/dev/null || die "this installer is for Debian or Raspberry Pi OS (no apt-get)"
    command -v python3 >/dev/null || die "python3 is missing: apt-get install python3"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "Outpost needs Python 3.11 or newer; $(python3 --version 2>&1) found (Debian 12 has 3.11)"
}

# --- packages, user, directories ------------------------------------------------------

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

install_packages() {
    missing=""
    for package in $PACKAGES; do
        installed "$package" || missing="$missing $package"
    done
    [ -z "$missing" ] && return 0
    say "installing$missing from Debian"
    export DEBIAN_FRONTEND=noninteractive
    quietly apt-get -q update
    # shellcheck disable=SC2086  # one word per package
    quietly apt-get -q -y --no-install-recommends install $missing
}

ensure_account() {
    getent passwd "$ACCOUNT" >/dev/null && return 0
    say "creating the system user $ACCOUNT"
    useradd --system --user-group --home-dir "$DATA" --no-create-home \
        --shell /usr/sbin/nologin --comment "Outpost gateway" "$ACCOUNT"
}

# mkdir + owner + mode, whether or not it existed (a second run repairs a chmod).
directory() {
    mkdir -p "$1"
    chown "$2" "$1"
    chmod "$3" "$1"
}

ensure_directories() {
    directory "$PREFIX" root:root 0755
    directory "$RELEASES" root:root 0755
    directory "$PREFIX/bin" root:root 0755
    directory "$ETC" "root:$ACCOUNT" 0750
    # The store, stored files, the admin key and the device registry: the service's only.
    directory "$DATA" "$ACCOUNT:$ACCOUNT" 0700
    directory "$BACKUPS" "$ACCOUNT:$ACCOUNT" 0700
}

# --- LAN discovery through avahi-daemon ------------------------------------------------

# When avahi-daemon runs, the gateway hands it the announcement: it writes its own
# outpost-<id>.service into $AVAHI_SERVICES while it runs (docs/discovery.md). The
# directory is root's, so the outpost group may add files there: through a dpkg stat
# override, which avahi-daemon's upgrades (and a purge and reinstall) keep, not a chmod
# alone. Sticky (1775): the group removes or replaces only its own files, never the
# admin's. Without Avahi there is nothing to do; installed later, a run of this script
# sets it up and restarts the gateway, which decides who answers at its start.
avahi_services() {
    installed avahi-daemon || [ -d "$AVAHI_SERVICES" ] || return 0
    listed=$(dpkg-statoverride --list "$AVAHI_SERVICES" || true)
    if [ -n "$listed" ] && [ "$listed" != "$AVAHI_OVERRIDE" ]; then
        say "$AVAHI_SERVICES has a stat override of someone else's ($listed): left alone"
        return 0
    fi
    if [ -z "$listed" ]; then
        # shellcheck disable=SC2086  # user, group, mode, path
        dpkg-statoverride --add $AVAHI_OVERRIDE
    fi
    now=$(stat -c '%U:%G %a' "$AVAHI_SERVICES" 2>/dev/null || true)
    [ "$now" = "root:$ACCOUNT 1775" ] && return 0
    say "$AVAHI_SERVICES: the $ACCOUNT group may add its own files (LAN discovery through avahi-daemon)"
    directory "$AVAHI_SERVICES" "root:$ACCOUNT" 1775
    RESTART=1 # a running gateway found it read-only at its start and answers by itself
}

# Back to Debian's root:root 0755, without the files a killed gateway left behind.
avahi_services_undo() {
    if [ "$(dpkg-statoverride --list "$AVAHI_SERVICES" || true)" = "$AVAHI_OVERRIDE" ]; then
        dpkg-statoverride --remove "$AVAHI_SERVICES"
        if [ -d "$AVAHI_SERVICES" ]; then directory "$AVAHI_SERVICES" root:root 0755; fi
    fi
    # outpost-<first 12 of the gateway id>.service, and a write cut short.
    rm -f "$AVAHI_SERVICES"/outpost-????????????.service "$AVAHI_SERVICES"/.outpost-*.partial
}

# --- the package: one virtualenv per release --------------------------------------------

# A release is named by the hash of what it is built from, so the same source twice is
# the same release (nothing to do) and any change is a new one.
source_id() {
    if [ -f "$1" ]; then
        sha256sum "$1" | cut -c1-12
    else
        (cd "$1" && find pyproject.toml README.md gateway -name __pycache__ -prune -o -type f -print |
            LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-12
    fi
}

release_works() { [ -f "$1/.complete" ] && "$1/bin/outpost" --version >/dev/null 2>&1; }

build_release() {
    release=$1
    rm -rf "$release"
    say "building $release from $FROM (pip, PyPI)"
    quietly python3 -m venv "$release"
    if [ -f "$FROM" ]; then
        quietly "$release/bin/pip" install --no-input "$FROM"
    else
        # From a copy: pip builds in the tree it is given (setuptools leaves build/ and
        # an .egg-info there), and the checkout is its owner's, not root's to litter.
        tree=$(mktemp -d)
        trap 'rm -rf "$tree"' EXIT
        (cd "$FROM" && tar --exclude=__pycache__ -cf - pyproject.toml README.md gateway) |
            tar -C "$tree" -xf -
        quietly "$release/bin/pip" install --no-input "$tree"
    fi
    release_works_now "$release"
    touch "$release/.complete"
}

release_works_now() {
    "$1/bin/outpost" --version >/dev/null 2>&1 || {
        rm -rf "$1"
        die "the new release does not run ($1/bin/outpost --version failed)"
    }
}

# Point a symlink at a release in one rename, so the unit never sees it missing.
point() {
    ln -sfn "$2" "$1.tmp"
    mv -T "$1.tmp" "$1"
}

target() { readlink "$1" 2>/dev/null || true; }

# Keep the current and the last good release; remove older ones and failed builds.
prune_releases() {
    keep_current=$(target "$CURRENT")
    keep_previous=$(target "$PREVIOUS")
    for release in "$RELEASES"/*; do
        [ -e "$release" ] || continue
        [ "$release" = "$keep_current" ] || [ "$release" = "$keep_previous" ] || rm -rf "$release"
    done
}

# --- configuration and the app --------------------------------------------------------

write_config() {
    [ -e "$TOML" ] && return 0
    say "writing $TOML (yours from now on: never overwritten)"
    cat >"$TOML" <<EOF
# Outpost's settings on this machine, written once by deploy/install.sh; edit freely,
# then \`sudo systemctl restart outpost\`. Every setting: \`outpost config\` and
# docs/configuration.md.
data_dir = "$DATA"

# The broker is Debian's mosquitto.service with Outpost's drop-in
# ($MOSQUITTO_DROP_IN). The gateway's own credentials for it (mqtt_url) are in
# $MQTT_ENV, which only root reads and the unit passes on: this file
# is readable by the $ACCOUNT group. mqtt_host = "0.0.0.0" lets devices on the LAN in.
mqtt_broker = "external"
# mqtt_host = "127.0.0.1"
# mqtt_port = 1883
EOF
    chown "root:$ACCOUNT" "$TOML"
    chmod 0640 "$TOML"
}

# The app to run: DIR from --app, else the installed one, else a new one from `outpost
# init`. A new app is staged as app.new and takes the installed one's place only once it
# loads (`outpost check`) with the release that will run it. Root owns it; the service
# reads it through its group.
stage_app() {
    rm -rf "$APP.new"
    if [ -n "$APP_FROM" ]; then
        [ -d "$APP_FROM/convex" ] || die "--app $APP_FROM: no convex/ folder in it"
        mkdir "$APP.new"
        cp -R "$APP_FROM/convex" "$APP.new/"
        find "$APP.new" -name __pycache__ -prune -exec rm -rf {} +
        if [ -d "$APP/convex" ] && diff -r "$APP.new/convex" "$APP/convex" >/dev/null; then
            rm -rf "$APP.new"  # the same app again
            return 0
        fi
    elif [ ! -d "$APP" ]; then
        scratch=$(mktemp -d)
        quietly "$1" init "$scratch/app"
        mkdir "$APP.new"
        cp -R "$scratch/app/convex" "$APP.new/"
        rm -rf "$scratch"
    else
        return 0
    fi
    own_app "$APP.new"
}

own_app() {
    chown -R "root:$ACCOUNT" "$1"
    find "$1" -type d -exec chmod 0750 {} +
    find "$1" -type f -exec chmod 0640 {} +
    # `outpost <command> /etc/outpost/app` finds the settings as in any app folder.
    ln -sfn "$TOML" "$1/outpost.toml"
}

# Whether the app that is about to run (staged or installed) loads with release $1.
check_app() {
    app=$APP
    [ -d "$APP.new" ] && app=$APP.new
    log=$(mktemp)
    if ! (cd / && as_outpost "$1/bin/outpost" check "$app") >/dev/null 2>"$log"; then
        tail -n 20 "$log" >&2
        rm -f "$log"
        rm -rf "$APP.new"
        return 1
    fi
    rm -f "$log"
}

swap_app() {
    if [ -d "$APP.new" ]; then
        if [ -n "$APP_FROM" ]; then
            say "the app in $APP is now $APP_FROM's"
        else
            say "no app yet: $APP from \`outpost init\` (install yours with --app DIR)"
        fi
        rm -rf "$APP.old"
        if [ -d "$APP" ]; then mv "$APP" "$APP.old"; fi
        mv "$APP.new" "$APP"
        rm -rf "$APP.old"
        RESTART=1
    fi
    own_app "$APP"  # a second run repairs owners and modes
}

# --- units and Mosquitto -------------------------------------------------------------

# Copy a file if it differs; says whether it did (exit 0 = changed).
put() {
    if cmp -s "$1" "$2"; then return 1; fi
    install -m "$3" "$1" "$2"
    return 0
}

install_units() {
    changed=1
    for unit in $UNIT_FILES; do
        put "$CHECKOUT/systemd/$unit" "$UNITS/$unit" 0644 && changed=0
    done
    mkdir -p "$DROP_IN_DIR"
    put "$CHECKOUT/systemd/outpost.service.d/mosquitto.conf" "$DROP_IN_DIR/mosquitto.conf" 0644 &&
        changed=0
    put "$HERE/outpost-mosquitto-sync" "$SYNC" 0755 && changed=0
    ln -sfn "$CURRENT/bin/outpost" /usr/local/bin/outpost
    if [ "$changed" = 0 ]; then
        RESTART=1
        if systemd_running; then systemctl daemon-reload; fi
    fi
    # Works offline too: enabling only makes the [Install] symlinks.
    # shellcheck disable=SC2086  # one word per unit
    quietly systemctl enable $ENABLED_UNITS
}

# --- start, check, roll back -----------------------------------------------------------

# Restart the service on the current release; 1 if it did not come up (Type=notify:
# `systemctl restart` returns once the gateway serves, or fails).
restart_service() {
    systemctl restart outpost.service && systemctl is-active --quiet outpost.service
}

start_or_say() {
    if ! systemd_running; then
        say "systemd is not running here (a chroot or container): units installed and enabled, not started"
        return 0
    fi
    systemctl start mosquitto.service
    if [ "$RESTART" = 1 ]; then
        restart_service || return 1
    else  # nothing changed: leave a running gateway alone
        systemctl start outpost.service && systemctl is-active --quiet outpost.service || return 1
    fi
    say "outpost.service is running ($(systemctl show -p MainPID --value outpost.service) on $(target "$CURRENT"))"
}

# --- commands ------------------------------------------------------------------------

install_or_upgrade() {
    preflight
    install_packages
    ensure_account
    ensure_directories
    write_config
    id=$(source_id "$FROM")
    new=$RELEASES/$id
    old=$(target "$CURRENT")
    if [ "$old" = "$new" ] && release_works "$new"; then
        say "release $id is installed already ($("$new/bin/outpost" --version))"
        stage_app "$new/bin/outpost"
        if [ -d "$APP.new" ] && ! check_app "$new"; then
            die "the new app does not load (above); nothing changed"
        fi
    else
        release_works "$new" || build_release "$new"
        stage_app "$new/bin/outpost"
        if ! check_app "$new"; then
            [ "$new" = "$old" ] || rm -rf "$new"
            die "the app does not load with release $id (above); nothing changed"
        fi
        if [ -n "$old" ] && [ "$old" != "$new" ]; then
            backup_before_upgrade "$old"
            point "$PREVIOUS" "$old"
        fi
        point "$CURRENT" "$new"
        RESTART=1
        say "release $id is current ($("$new/bin/outpost" --version))${old:+; the last good one is $old}"
    fi
    swap_app
    avahi_services # after the checks: a refused release or app leaves Avahi's directory alone
    install_units
    env_before=$(cat "$MQTT_ENV" 2>/dev/null || true)
    quietly "$SYNC"
    [ "$env_before" = "$(cat "$MQTT_ENV")" ] || RESTART=1
    if ! start_or_say; then
        roll_back_after_failure "$old"
    fi
    prune_releases
}

backup_before_upgrade() {
    if [ ! -e "$DATA/outpost.sqlite3" ]; then
        say "no store in $DATA yet: no backup needed"
        return 0
    fi
    file=$BACKUPS/pre-upgrade-$(date -u +%Y%m%dT%H%M%SZ).tar
    say "backing up the store to $file (outpost backup, with the running release)"
    quietly as_outpost "$1/bin/outpost" backup "$file" --app "$APP" --config "$TOML" --data-dir "$DATA"
    # Keep the newest few: an SD card is small.
    # shellcheck disable=SC2012  # our own file names, no newlines
    ls -1t "$BACKUPS"/pre-upgrade-*.tar | tail -n +$((KEEP_BACKUPS + 1)) | while read -r stale; do
        rm -f "$stale"
    done
}

roll_back_after_failure() {
    failed=$(target "$CURRENT")
    journalctl -u outpost.service -n 20 --no-pager >&2 || true
    if [ -z "$1" ] || [ "$1" = "$failed" ]; then
        die "outpost.service did not start (journal above); no earlier release to go back to"
    fi
    point "$CURRENT" "$1"
    point "$PREVIOUS" "$failed"
    restart_service || die "outpost.service did not start on $failed nor on the last good $1"
    die "outpost.service did not start on $failed (journal above); back on the last good $1"
}

roll_back() {
    preflight
    previous=$(target "$PREVIOUS")
    current=$(target "$CURRENT")
    if [ -z "$previous" ] || ! release_works "$previous"; then
        die "no last good release to go back to"
    fi
    point "$CURRENT" "$previous"
    point "$PREVIOUS" "$current"
    RESTART=1
    say "back on $previous (the release it replaced, $current, is kept as the last good one)"
    start_or_say || die "outpost.service did not start on $previous"
}

uninstall() {
    preflight
    if systemd_running; then
        systemctl disable --now outpost.service outpost-mosquitto.path 2>/dev/null || true
    else
        systemctl disable outpost.service outpost-mosquitto.path 2>/dev/null || true
    fi
    for unit in $UNIT_FILES; do rm -f "$UNITS/$unit"; done
    rm -rf "$DROP_IN_DIR"
    # Mosquitto stays installed (other programs may use it); Outpost's part of it goes.
    rm -f "$MOSQUITTO_DROP_IN"
    rm -rf "$MOSQUITTO_FILES"
    avahi_services_undo
    if systemd_running; then
        systemctl daemon-reload
        systemctl try-restart mosquitto.service || true
    fi
    if [ "$(target /usr/local/bin/outpost)" = "$CURRENT/bin/outpost" ]; then
        rm -f /usr/local/bin/outpost
    fi
    rm -rf "$PREFIX"
    if [ "$PURGE" = 1 ]; then
        rm -rf "$DATA" "$ETC"
        if getent passwd "$ACCOUNT" >/dev/null; then userdel "$ACCOUNT"; fi
        if getent group "$ACCOUNT" >/dev/null; then groupdel "$ACCOUNT"; fi
        say "uninstalled and purged: $DATA, $ETC and the user $ACCOUNT are gone"
    else
        say "uninstalled; kept $DATA (the store), $ETC and the user $ACCOUNT (--purge removes them)"
    fi
}

ACTION=install
RESTART=0
PURGE=0
FROM=$CHECKOUT
APP_FROM=""
while [ $# -gt 0 ]; do
    case $1 in
    --uninstall) ACTION=uninstall ;;
    --purge) PURGE=1 ;;
    --rollback) ACTION=rollback ;;
    --from)
        [ $# -ge 2 ] || die "--from needs a path (a checkout, a wheel or an sdist)"
        FROM=$2
        shift
        ;;
    --app)
        [ $# -ge 2 ] || die "--app needs a folder (the one holding convex/)"
        APP_FROM=$2
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
[ "$PURGE" = 0 ] || [ "$ACTION" = uninstall ] || die "--purge goes with --uninstall"
[ -e "$FROM" ] || die "--from $FROM: no such file or folder"
FROM=$(cd "$(dirname "$FROM")" && pwd)/$(basename "$FROM")
[ -z "$APP_FROM" ] || APP_FROM=$(cd "$APP_FROM" && pwd) || die "--app: no folder $APP_FROM"
if [ -d "$FROM" ] && [ ! -f "$FROM/pyproject.toml" ]; then
    die "--from $FROM: not an Outpost checkout (no pyproject.toml)"
fi

case $ACTION in
install) install_or_upgrade ;;
rollback) roll_back ;;
uninstall) uninstall ;;
esac
