#!/bin/bash
# tests/vm/run-in-vm.sh -- minikubelet's cgroup v2 VM harness.
#
# Runs COMMAND inside a throw-away Linux guest whose only cgroup hierarchy is cgroup v2
# (cpu, memory, pids, io controllers). The project's machines and CI mount cgroup v1
# controllers, so this is the only place where CPU and memory limits are really enforced.
# docs/testing.md describes the backends and how the harness picks one.
#
# The host's / is the guest's root, read-only underneath a tmpfs overlay (guest writes are
# discarded); the current directory and $MKVM_RW_DIRS are shared read-write at the same paths.
# COMMAND runs as root in the same cwd with the caller's exported environment (plus
# MKVM_GUEST=1); its stdout+stderr appear on our stdout. Missing Debian packages are installed
# first (idempotent; needs root and the package mirror).
#
# usage: tests/vm/run-in-vm.sh [--systemd] COMMAND [ARGS...]
#   --systemd   boot the host's systemd as PID 1; COMMAND runs in mkvm.service
#               (Delegate=yes, cgroup /system.slice/mkvm.service). Adds ~10 s.
# env:
#   MKVM_BACKEND  auto (default) user-mode Linux where it boots on this host, else QEMU. Whether
#                      UML boots is learnt from its first boot and cached per host kernel, CPU
#                      model and UML binary (in $MKVM_VERDICTS). A guest that does not get as far
#                      as starting COMMAND is reported ("did not boot", with the backend and the
#                      reason: the kernel's panic line, or the console's last words) and COMMAND
#                      is retried once on the other backend.
#                 uml  Debian's user-mode-linux: a Linux 6.1 kernel run as a host process.
#                      1 CPU, no PSI/cpuset. Boots in ~3 s: fastest here. Does not boot on
#                      every CPU (its init dies of SIGSEGV on Sapphire Rapids class Xeons).
#                 qemu QEMU TCG (software CPU emulation; KVM on these hosts cannot run a
#                      normal kernel) with Debian's linux-image-amd64; N vCPUs, PSI, cpuset.
#                 With uml or qemu the harness uses only that backend, without fallback.
#   MKVM_UML      the UML kernel binary (default linux.uml from user-mode-linux)
#   MKVM_MEM      guest RAM in MiB (default 2048)
#   MKVM_CPUS     vCPUs for qemu (default: nproc)
#   MKVM_TIMEOUT  seconds before the guest is killed (default 900)
#   MKVM_BOOT_TIMEOUT  seconds the guest has to start COMMAND, else it "did not boot" (default 180)
#   MKVM_CACHE    kernel/initramfs cache for qemu (default /var/cache/minikubelet-vm)
#   MKVM_VERDICTS where auto keeps its verdicts (default $MKVM_CACHE)
#   MKVM_RW_DIRS  extra host directories shared read-write (space separated)
#   MKVM_NO_PYENV_RESOLVE=1  keep pyenv shims first in PATH (they cost ~8 s per call in the guest)
#   MKVM_DEBUG=1  show kernel/systemd messages
# stderr: "[vm] ..." lines; the last one says which backend ran COMMAND and for how long.
# exit status: COMMAND's exit status; 125 = the VM itself failed / timed out; 2 = usage.
set -euo pipefail

SYSTEMD=0
if [ "${1:-}" = "--systemd" ]; then SYSTEMD=1; shift; fi
[ $# -gt 0 ] || { echo "usage: $0 [--systemd] COMMAND [ARGS...]" >&2; exit 2; }
BACKEND=${MKVM_BACKEND:-auto}
UML=${MKVM_UML:-linux.uml}
CACHE=${MKVM_CACHE:-/var/cache/minikubelet-vm}
VERDICTS=${MKVM_VERDICTS:-$CACHE}
MEM=${MKVM_MEM:-2048}
CPUS=${MKVM_CPUS:-$(nproc)}
TIMEOUT=${MKVM_TIMEOUT:-900}
BOOT_TIMEOUT=${MKVM_BOOT_TIMEOUT:-180}
log() { echo "[vm] $*" >&2; }
die() { echo "[vm] ERROR: $*" >&2; exit 125; }
[ "$(id -u)" = 0 ] || die "must run as root"
case $BACKEND in auto|uml|qemu) ;; *) die "unknown MKVM_BACKEND=$BACKEND (auto, uml or qemu)" ;; esac
if [ "${MKVM_DEBUG:-0}" = 1 ]; then KLOG="loglevel=7"; else KLOG="quiet loglevel=1"; fi

# ---------- 1. host packages (idempotent), per backend ----------------------------
apt_updated=0
apt_update() { [ $apt_updated = 1 ] || { apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 || true; apt_updated=1; }; }
install_for() {
  local need=()
  [ -x /bin/busybox ] || need+=(busybox-static)
  case $1 in
    uml)  [ "$UML" != linux.uml ] || command -v linux.uml >/dev/null || need+=(user-mode-linux) ;;
    qemu) command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
          command -v xz >/dev/null || need+=(xz-utils) ;;
  esac
  [ ${#need[@]} -gt 0 ] || return 0
  log "installing ${need[*]}"; apt_update
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${need[@]}" >&2 || die "apt-get install ${need[*]} failed"
}

# ---------- 2. per-run control dir: command script, rw dirs, exit status --------
# The guest marks its progress here: "started" just before COMMAND runs (a guest that never
# writes it did not boot), "rc" with COMMAND's exit status, "bootfail" with the init's reason.
CTL=$(mktemp -d /tmp/mkvm-ctl.XXXXXX); chmod 755 "$CTL"
CONSOLE=$CTL.console  # the guest's console (kernel messages and COMMAND's output), not shared
VMPID= TAILPID=
stop_vm() {
  if [ -n "$VMPID" ]; then
    kill -TERM -- "-$VMPID" 2>/dev/null; sleep 1; kill -KILL -- "-$VMPID" 2>/dev/null
    wait "$VMPID" 2>/dev/null
  fi
  if [ -n "$TAILPID" ]; then wait "$TAILPID" 2>/dev/null; fi
  VMPID= TAILPID=
}
cleanup() { stop_vm; rm -rf "$CTL" "$CONSOLE"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
CWD=$(pwd -P)
{ echo "$CWD"; for d in ${MKVM_RW_DIRS:-}; do (cd "$d" && pwd -P); done; } | sort -u > "$CTL/rwdirs"
# pyenv shims are bash scripts forking a dozen processes: ~8 s per call when emulated
PYBIN=
if [ "${MKVM_NO_PYENV_RESOLVE:-0}" != 1 ] && command -v pyenv >/dev/null 2>&1; then
  PYBIN=$(pyenv prefix 2>/dev/null | head -1 || true)/bin; [ -x "$PYBIN/python3" ] || PYBIN=
fi
{
  echo '#!/bin/bash'
  for v in $(compgen -e); do
    case $v in PWD|OLDPWD|SHLVL|HOSTNAME|_|TERM|TMPDIR|DISPLAY|INVOCATION_ID|JOURNAL_STREAM|NOTIFY_SOCKET|MANAGERPID|SSH_*|XDG_*|DBUS_*|LISTEN_*|SYSTEMD_*|MKVM_*) continue;; esac
    declare -p "$v"
  done
  if [ -n "$PYBIN" ]; then printf 'export PATH=%q:"$PATH"\n' "$PYBIN"; fi
  echo 'export TERM=dumb MKVM_GUEST=1'
  printf 'cd %q || exit 125\n' "$CWD"
  printf '%q ' "$@"; echo
} > "$CTL/cmd.sh"
chmod 755 "$CTL/cmd.sh"

# guest-side mounts for the new root $R (sourced by both inits; $B = busybox)
cat > "$CTL/setup-root.sh" <<'EOF'
$B mount -t proc proc $R/proc; $B mount -t sysfs sys $R/sys; $B mount -t devtmpfs dev $R/dev
$B mkdir -p $R/dev/pts $R/dev/shm
$B mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $R/dev/pts; $B mount -t tmpfs shm $R/dev/shm
$B mount -t cgroup2 -o nsdelegate cgroup2 $R/sys/fs/cgroup || fail "mount cgroup2"
for d in tmp run var/tmp; do $B mount -t tmpfs -o mode=1777 tmpfs $R/$d; done
$B chmod 755 $R/run; $B mkdir -p $R/run/mkvm
$B hostname mkvm; $B ip link set lo up 2>/dev/null
echo "127.0.0.1 localhost mkvm" > $R/etc/hosts
$B rm -f $R/.dockerenv $R/run/.containerenv   # else systemd/tools think they are in a container
EOF
# --systemd: a target that only needs basic.target plus the command's service
if [ $SYSTEMD = 1 ]; then
  mkdir -p "$CTL/units"
  printf '%s\n' '[Unit]' 'Description=mkvm run' 'Requires=basic.target mkvm.service' \
    'After=basic.target' 'AllowIsolate=yes' > "$CTL/units/mkvm.target"
  printf '%s\n' '[Unit]' 'Description=mkvm command' 'After=basic.target' \
    '[Service]' 'Type=oneshot' 'TimeoutStartSec=infinity' 'Delegate=yes' \
    'StandardOutput=tty' 'StandardError=tty' 'TTYPath=/dev/console' \
    'ExecStart=/bin/bash -c "stty -F /dev/console -onlcr; : > /run/mkvm/started; /bin/bash /run/mkvm/cmd.sh; echo $? > /run/mkvm/rc; sync"' \
    'ExecStartPost=/bin/systemctl --no-block poweroff --force' > "$CTL/units/mkvm.service"
  # units a test run does not need (masked inside the guest overlay only)
  echo systemd-networkd.service systemd-resolved.service systemd-timesyncd.service \
    systemd-udev-trigger.service systemd-udevd.service systemd-udev-settle.service \
    systemd-journal-flush.service systemd-random-seed.service systemd-update-utmp.service \
    systemd-tmpfiles-setup-dev.service systemd-sysusers.service ldconfig.service \
    systemd-binfmt.service systemd-modules-load.service systemd-remount-fs.service \
    systemd-firstboot.service systemd-machine-id-commit.service systemd-hwdb-update.service \
    systemd-journal-catalog-update.service systemd-pstore.service apparmor.service \
    e2scrub_reap.service keyboard-setup.service console-setup.service kmod-static-nodes.service \
    modprobe@configfs.service modprobe@dm_mod.service modprobe@drm.service modprobe@efi_pstore.service \
    modprobe@fuse.service modprobe@loop.service proc-sys-fs-binfmt_misc.automount \
    dev-hugepages.mount dev-mqueue.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
    sys-kernel-config.mount sys-fs-fuse-connections.mount tmp.mount > "$CTL/units/mask"
fi
# last step of both inits: run the command (or systemd) in the prepared root $R
cat > "$CTL/start.sh" <<'EOF'
if [ "$SYSD" = 1 ]; then
  $B cp $R/run/mkvm/units/mkvm.* $R/etc/systemd/system/
  for u in $($B cat $R/run/mkvm/units/mask); do $B ln -sf /dev/null $R/etc/systemd/system/$u; done
  $B mkdir -p $R/run/systemd; echo mkvm > $R/etc/hostname 2>/dev/null
  exec $B chroot $R /lib/systemd/systemd --unit=mkvm.target $SDOPTS
fi
$B stty -F /dev/console -onlcr 2>/dev/null
: > $R/run/mkvm/started
$B chroot $R /bin/bash /run/mkvm/cmd.sh < /dev/null > /dev/console 2>&1
echo $? > $R/run/mkvm/rc
$B sync; $B poweroff -f
EOF
if [ "${MKVM_DEBUG:-0}" = 1 ]; then SDOPTS="--log-level=info"; else SDOPTS="--show-status=0 --log-level=warning"; fi

# ---------- 3a. backend: user-mode Linux ---------------------------------------
run_uml() {
  [ -d "/usr/lib/uml/modules/$(ls /usr/lib/uml/modules | sort -V | tail -1)" ] || {
    BOOTFAIL="user-mode-linux's modules are missing (/usr/lib/uml/modules)"; return 1; }
  printf '#!/bin/busybox sh\nB=/bin/busybox; CTL=%s; R=/mnt/mkvm-root; SYSD=%s; SDOPTS="%s"\n' "$CTL" "$SYSTEMD" "$SDOPTS" > "$CTL/init"
  cat >> "$CTL/init" <<'EOF'
fail() { echo "[mkvm-init] $*"; echo "$*" > $CTL/bootfail; $B sync; $B poweroff -f; }
$B mount -t proc proc /proc; $B mount -t sysfs sys /sys
$B mount -t tmpfs -o mode=755 tmpfs /mnt || fail "tmpfs"
$B mkdir -p /mnt/upper /mnt/work $R /mnt/ctl
$B mount -t hostfs -o $CTL none /mnt/ctl || fail "hostfs ctl"
$B insmod /usr/lib/uml/modules/$($B uname -r)/kernel/fs/overlayfs/overlay.ko 2>/dev/null
$B mount -t overlay -o lowerdir=/,upperdir=/mnt/upper,workdir=/mnt/work overlay $R || fail "overlay"
. /mnt/ctl/setup-root.sh
$B mount --move /mnt/ctl $R/run/mkvm
while read -r p; do
  [ -n "$p" ] || continue
  $B mkdir -p "$R$p"; $B mount -t hostfs -o "$p" none "$R$p" || fail "hostfs $p"
done < $R/run/mkvm/rwdirs
. $R/run/mkvm/start.sh
EOF
  chmod 755 "$CTL/init"
  log "booting user-mode Linux (1 CPU, ${MEM} MiB, systemd=$SYSTEMD) to run: $*"
  # UML backs guest RAM with a sparse file in $TMPDIR; hostfs root is mounted read-only
  local memdir=/dev/shm
  [ "$(df --output=avail -m /dev/shm 2>/dev/null | tail -1 | tr -d ' ')" -gt "$MEM" ] 2>/dev/null || memdir=/tmp
  TMPDIR=$memdir setsid timeout -k 10 "$TIMEOUT" "$UML" mem="${MEM}M" \
    root=/dev/root rootfstype=hostfs rootflags=/ ro init="$CTL/init" \
    con=null con0=fd:0,fd:1 selinux=0 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 $KLOG \
    < /dev/null > "$CONSOLE" 2>&1 &
  VMPID=$!
}

# ---------- 3b. backend: QEMU TCG with Debian's kernel ---------------------------
run_qemu() {
  local KDIR=$CACHE/kernel VMLINUZ MODDIR INITRD KIMG
  mkdir -p "$CACHE"
  if ! ls "$KDIR"/boot/vmlinuz-* >/dev/null 2>&1; then
    local pkg tmpd
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
    [ -n "$pkg" ] || { apt_update; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}'); }
    [ -n "$pkg" ] || die "cannot resolve linux-image-amd64"
    log "downloading ${pkg}-unsigned (unpacked into $KDIR, not installed)"
    tmpd=$(mktemp -d "$CACHE/dl.XXXXXX"); chmod 755 "$tmpd"
    (cd "$tmpd" && apt-get -o DPkg::Lock::Timeout=600 download "${pkg}-unsigned" >&2) \
      || die "apt-get download ${pkg}-unsigned failed"
    rm -rf "$KDIR.new"; dpkg-deb -x "$tmpd"/*.deb "$KDIR.new"; rm -rf "$tmpd" "$KDIR"; mv "$KDIR.new" "$KDIR"
  fi
  VMLINUZ=$(ls "$KDIR"/boot/vmlinuz-* | head -1)
  # an uncompressed ELF vmlinux boots via PVH and skips ~6 s of emulated xz decompression
  if [ ! -s "$KDIR/vmlinux" ]; then
    local pos; pos=$(tr '\3757zXZ\000\nabcde' '\nabcde=' < "$VMLINUZ" | grep -abo '^abcde' | head -1) || true
    pos=${pos%%:*}
    if [ -n "$pos" ] && tail -c+"$pos" "$VMLINUZ" | xz -dc > "$KDIR/vmlinux.tmp" 2>/dev/null; [ "$(head -c4 "$KDIR/vmlinux.tmp" 2>/dev/null)" = $'\x7fELF' ]; then
      mv "$KDIR/vmlinux.tmp" "$KDIR/vmlinux"
    else rm -f "$KDIR/vmlinux.tmp"; fi
  fi
  KIMG=$VMLINUZ; [ -s "$KDIR/vmlinux" ] && KIMG=$KDIR/vmlinux
  MODDIR=$(ls -d "$KDIR"/lib/modules/* | head -1)/kernel
  INITRD=$CACHE/initrd-$(basename "$VMLINUZ")-v6.cpio.gz
  if [ ! -s "$INITRD" ]; then
    log "building $INITRD"
    local ird m f; ird=$(mktemp -d); mkdir -p "$ird"/{bin,proc,sys,dev,tmp,lib/modules,mnt/lower,mnt/rw,mnt/root,mnt/ctl}
    cp /bin/busybox "$ird/bin/busybox"
    for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$ird/bin/$a"; done
    for m in drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_legacy_dev \
             drivers/virtio/virtio_pci_modern_dev drivers/virtio/virtio_pci net/9p/9pnet \
             net/9p/9pnet_virtio fs/netfs/netfs fs/fscache/fscache fs/9p/9p fs/overlayfs/overlay; do
      f=$(ls "$MODDIR/$m".ko* 2>/dev/null | head -1) || true
      [ -n "$f" ] || continue
      case $f in *.xz) xz -dc "$f" ;; *.zst) zstd -dc "$f" ;; *) cat "$f" ;; esac > "$ird/lib/modules/$(basename "$m").ko"
    done
    cat > "$ird/init" <<'INIT'
#!/bin/sh
export PATH=/bin; B=/bin/busybox; R=/mnt/root
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci 9pnet 9pnet_virtio netfs fscache 9p overlay; do
  [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko
done
fail() { echo "[mkvm-init] $*"; echo "$*" > /mnt/ctl/bootfail; sync; poweroff -f; }
O9P="trans=virtio,version=9p2000.L,msize=262144"
mount -t 9p -o $O9P,cache=none ctl /mnt/ctl || fail "mount ctl"
mount -t 9p -o $O9P,ro,cache=loose hostroot /mnt/lower || fail "mount hostroot"
mount -t tmpfs -o mode=755 rw /mnt/rw; mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work overlay $R || fail "overlay"
. /mnt/ctl/setup-root.sh
mount --move /mnt/ctl $R/run/mkvm
i=0
while read -r p; do
  [ -n "$p" ] || continue
  mkdir -p "$R$p"; mount -t 9p -o $O9P,cache=none rw$i "$R$p" || fail "mount rw$i $p"
  i=$((i+1))
done < $R/run/mkvm/rwdirs
SYSD=0; SDOPTS=
for a in $(cat /proc/cmdline); do case $a in mkvm.systemd=1) SYSD=1;; mkvm.sdopts=*) SDOPTS=$(echo "${a#mkvm.sdopts=}" | tr , ' ');; esac; done
. $R/run/mkvm/start.sh
INIT
    chmod +x "$ird/init"
    (cd "$ird" && find . | /bin/busybox cpio -o -H newc 2>/dev/null | gzip -1) > "$INITRD.tmp" && mv "$INITRD.tmp" "$INITRD"
    rm -rf "$ird"
  fi
  local APPEND="console=ttyS0 panic=-1 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 $KLOG"
  [ $SYSTEMD = 1 ] && APPEND+=" mkvm.systemd=1 mkvm.sdopts=${SDOPTS// /,}"
  local QARGS=(-nodefaults -no-user-config -nographic -no-reboot
    -machine pc -accel tcg,thread=multi,tb-size=512 -cpu "${MKVM_QEMU_CPU:-max}" -smp "$CPUS" -m "$MEM"
    -kernel "$KIMG" -initrd "$INITRD" -append "$APPEND" -serial stdio -monitor none
    -fw_cfg name=etc/sercon-port,string=0
    -fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap
    -device virtio-9p-pci,fsdev=root,mount_tag=hostroot
    -fsdev "local,id=ctl,path=$CTL,security_model=none,multidevs=remap"
    -device virtio-9p-pci,fsdev=ctl,mount_tag=ctl)
  local i=0 p
  while read -r p; do
    QARGS+=(-fsdev "local,id=rw$i,path=$p,security_model=none,multidevs=remap" -device "virtio-9p-pci,fsdev=rw$i,mount_tag=rw$i")
    i=$((i+1))
  done < "$CTL/rwdirs"
  log "booting QEMU/TCG guest ($CPUS vCPU, ${MEM} MiB, systemd=$SYSTEMD) to run: $*"
  setsid timeout -k 10 "$TIMEOUT" qemu-system-x86_64 "${QARGS[@]}" < /dev/null > "$CONSOLE" 2>&1 &
  VMPID=$!
}

# ---------- 4. boot, and fall back to the other backend when a guest cannot boot ---------

# The reason a guest that never started COMMAND gives: the init's own words, the kernel's
# panic line, or the console's last line.
boot_failure_reason() {
  local vrc=$1 line
  if [ -s "$CTL/bootfail" ]; then echo "its init failed: $(head -1 "$CTL/bootfail")"; return; fi
  line=$(grep -a -m1 -E 'Kernel panic|panic:' "$CONSOLE" 2>/dev/null | tr -d '\r' |
    sed 's/^[[:space:]]*\(\[[^]]*\]\)\{0,1\}[[:space:]]*//' || true)
  if [ -n "$line" ]; then echo "$line"; return; fi
  [ -n "${BOOT_TIMED_OUT:-}" ] && { echo "COMMAND had not started after ${BOOT_TIMEOUT}s"; return; }
  line=$(grep -a -v '^[[:space:]]*$' "$CONSOLE" 2>/dev/null | tail -1 | tr -d '\r' || true)
  if [ -n "$line" ]; then line="; the last line on its console: $line"; fi
  echo "the VM exited with status $vrc$line"
}

# attempt BACKEND COMMAND...: boot once. Returns 0 when COMMAND ran (its status in $CTL/rc),
# 1 when the guest did not boot (BOOTFAIL says why), 2 when it died or hung after starting it.
attempt() {
  local be=$1 vrc=0 t0; shift
  rm -f "$CTL/rc" "$CTL/started" "$CTL/bootfail" "$CONSOLE"; : > "$CONSOLE"
  BOOTFAIL= BOOT_TIMED_OUT= VMPID=
  install_for "$be"
  t0=$SECONDS
  "run_$be" "$@" || return 1
  tail -n +1 -s 0.2 -f --pid="$VMPID" "$CONSOLE" | grep -a -v --line-buffered 'externally provided fw_cfg' &
  TAILPID=$!
  while kill -0 "$VMPID" 2>/dev/null; do
    if [ ! -e "$CTL/started" ] && [ $((SECONDS - t0)) -ge "$BOOT_TIMEOUT" ]; then
      BOOT_TIMED_OUT=1; kill -TERM -- "-$VMPID" 2>/dev/null; sleep 1; kill -KILL -- "-$VMPID" 2>/dev/null
    fi
    sleep 0.2
  done 2>/dev/null  # (bash's own notice of a VM killed by a signal: the reason comes below)
  wait "$VMPID" 2>/dev/null || vrc=$?
  wait "$TAILPID" || true
  VMPID= TAILPID=
  ELAPSED=$((SECONDS - t0))
  if [ -s "$CTL/rc" ]; then return 0; fi
  if [ ! -e "$CTL/started" ]; then BOOTFAIL=$(boot_failure_reason "$vrc"); return 1; fi
  BOOTFAIL="the guest stopped before COMMAND finished (vm rc=$vrc; 124 = killed after ${TIMEOUT}s)"
  return 2
}

name_of() { case $1 in uml) echo "user-mode Linux";; qemu) echo "QEMU/TCG";; esac; }

# auto: what the last boot of this UML binary on this host kernel and CPU model showed.
FALLBACK=0 VERDICT=
if [ "$BACKEND" = auto ]; then
  FALLBACK=1
  uml_bin=$(command -v "$UML" 2>/dev/null || echo "$UML")
  uml_id=$(stat -L -c '%n %s %Y' "$uml_bin" 2>/dev/null || echo "$uml_bin")
  cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2-)
  key=$(printf '%s|%s|%s' "$(uname -r)" "$cpu" "$uml_id" | cksum | cut -d' ' -f1)
  VERDICT=$VERDICTS/uml-boots.$key
  BACKEND=uml
  if [ -s "$VERDICT" ] && [ "$(head -1 "$VERDICT")" = qemu ]; then
    BACKEND=qemu
    log "using QEMU/TCG: user-mode Linux did not boot on this host ($(sed -n 2p "$VERDICT")); cached in $VERDICT"
  fi
fi
other() { case $1 in uml) echo qemu;; qemu) echo uml;; esac; }
record_verdict() {  # after a UML boot attempt in auto mode: $1 = uml or qemu, $2 = reason
  [ -n "$VERDICT" ] || return 0
  mkdir -p "$VERDICTS"
  printf '%s\n%s\n' "$1" "${2:-}" > "$VERDICT.tmp" && mv "$VERDICT.tmp" "$VERDICT"
}

set +e; attempt "$BACKEND" "$@"; status=$?; set -e
if [ "$BACKEND" = uml ] && [ $status != 1 ]; then record_verdict uml; fi
if [ $status = 1 ]; then
  log "the $(name_of "$BACKEND") guest did not boot: $BOOTFAIL"
  [ "$BACKEND" = uml ] && record_verdict qemu "$BOOTFAIL"
  [ $FALLBACK = 1 ] || die "the $(name_of "$BACKEND") guest did not boot (MKVM_BACKEND=$BACKEND: no fallback)"
  first=$BACKEND first_reason=$BOOTFAIL
  BACKEND=$(other "$BACKEND")
  log "retrying on $(name_of "$BACKEND")"
  set +e; attempt "$BACKEND" "$@"; status=$?; set -e
  if [ "$BACKEND" = uml ] && [ $status != 1 ]; then record_verdict uml; fi
  if [ $status = 1 ]; then
    die "no guest boots here: $(name_of "$first"): $first_reason; $(name_of "$BACKEND"): $BOOTFAIL"
  fi
fi
[ $status = 0 ] || die "$(name_of "$BACKEND"): $BOOTFAIL"
log "backend=$BACKEND: guest finished after ${ELAPSED} s, COMMAND exited $(cat "$CTL/rc")"
exit "$(cat "$CTL/rc")"
