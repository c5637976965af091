#!/bin/busybox sh
# /init of the MirrorPair test guest (tests/vm/guest.py packs it with a static busybox and the
# kernel's virtio/button/evdev modules into an initramfs; docs/testing-vms.md).
#
# Kernel command line (all optional):
#   mp.mode=records   (default) print "LAST N" (highest intact record on /dev/vda, 0 if none),
#                     then write records N+1, N+2, ... and print "REC n" once each is durable
#   mp.mode=ready     touch no disk: print "READY" and idle
#   mp.mode=bench     print "UP", then time mp.mb MiB (32) of 1 MiB O_DIRECT writes + fsync
#                     and mp.syncs (100) 4 KiB O_DIRECT writes each followed by fsync, print
#                     "BENCH mb=.. seq_s=.. syncs=.. sync_s=.." (benchmarks/vm.py) and idle
#   mp.records=K      power off after K records written in this boot
#   mp.delay=S        sleep S seconds (fractions allowed) after each record
#   mp.poweroff=S     power off S seconds after READY / after LAST
# The ACPI power button (libvirt's shutdown()) powers the guest off at any time.
#
# Record n lives in the 4 KiB slot n of the disk (slot 0 unused): 32 identical 128-byte lines
# "MPREC <n> <boot> <sha256 of 'MPREC <n> <boot>'>" padded with spaces, each ending in "\n",
# so a torn slot shows as differing lines. <boot> counts the boots that wrote to this disk.
# tests/vm/records.py reads them back on the host. Keep this format in step with it.

/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
# Everything this script says goes to the first serial port: the test reads it there.
exec </dev/ttyS0 >/dev/ttyS0 2>&1

for m in $(cat /etc/modules); do
    insmod "/lib/modules/$m.ko" || echo "MODERR $m"
done

mode=records records= delay= poweroff_after= mb=32 syncs=100
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        mp.mb=*) mb=${arg#mp.mb=} ;;
        mp.syncs=*) syncs=${arg#mp.syncs=} ;;
        mp.mode=*) mode=${arg#mp.mode=} ;;
        mp.records=*) records=${arg#mp.records=} ;;
        mp.delay=*) delay=${arg#mp.delay=} ;;
        mp.poweroff=*) poweroff_after=${arg#mp.poweroff=} ;;
    esac
done

off() {
    echo "POWEROFF $1"
    poweroff -f
}

# The power button is an input device: any event on it means "shut down". Reading it directly
# needs no acpid configuration. A read shorter than one input_event fails, hence bs=64.
for d in /sys/class/input/event*; do
    [ "$(cat "$d/device/name" 2>/dev/null)" = "Power Button" ] || continue
    (dd if="/dev/input/${d##*/}" bs=64 count=1 >/dev/null 2>&1 && off acpi) &
done

# The QEMU guest agent, where the domain has its channel (the initramfs holds qemu-ga where
# the host that built it has qemu-guest-agent installed).
for p in /sys/class/virtio-ports/vport*; do
    [ "$(cat "$p/name" 2>/dev/null)" = org.qemu.guest_agent.0 ] || continue
    if [ -x /bin/qemu-ga ]; then
        qemu-ga -d -m virtio-serial -p "/dev/${p##*/}" -f /tmp/qemu-ga.pid -t /tmp \
            && echo "GUEST AGENT"
    else
        echo "NO GUEST AGENT"
    fi
done

if [ -n "$poweroff_after" ]; then
    (sleep "$poweroff_after" && off timer) &
fi

idle() {
    while :; do sleep 3600; done
}

if [ "$mode" = ready ]; then
    echo "READY"
    idle
fi

i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
[ -b /dev/vda ] || { echo "NODISK"; idle; }

now() {
    cut -d' ' -f1 /proc/uptime
}

if [ "$mode" = bench ]; then
    echo "UP"
    t0=$(now)
    dd if=/dev/zero of=/dev/vda bs=1048576 count="$mb" oflag=direct conv=notrunc,fsync 2>/dev/null
    t1=$(now)
    i=0
    while [ $i -lt "$syncs" ]; do
        dd if=/dev/zero of=/dev/vda bs=4096 count=1 seek=$i oflag=direct conv=notrunc,fsync \
            2>/dev/null
        i=$((i + 1))
    done
    t2=$(now)
    echo "BENCH mb=$mb seq_s=$(awk "BEGIN { print $t1 - $t0 }") syncs=$syncs" \
        "sync_s=$(awk "BEGIN { print $t2 - $t1 }")"
    idle
fi
slots=$(($(cat /sys/block/vda/size) / 8))

# The last intact record of the run that starts at slot 1: the first slot that is not 32 copies
# of "MPREC <its number> ..." ends it. tr makes the zeros of unwritten slots short lines, so awk
# stops there instead of reading the whole disk as one line; awk's exit stops dd.
scan() {
    dd if=/dev/vda bs=65536 skip=4096 iflag=direct,skip_bytes 2>/dev/null | tr '\0' '\n' | awk '
        { slot = int((NR - 1) / 32) + 1; pos = (NR - 1) % 32 }
        pos == 0 { if ($1 != "MPREC" || $2 != slot) exit; first = $0; next }
        $0 != first { exit }
        pos == 31 { last = $2 " " $3 " " $4 }
        END { print last }'
}

digest() {
    h=$(printf 'MPREC %d %d' "$1" "$2" | sha256sum)
    echo "${h%% *}"
}

set -- $(scan)
last=${1:-0} boot=${2:-0}
if [ "$last" -gt 0 ] && [ "$(digest "$last" "$boot")" != "$3" ]; then
    echo "BADHASH $last"
fi
boot=$((boot + 1))
echo "LAST $last"
echo "BOOT $boot"

n=$((last + 1)) written=0
while [ -z "$records" ] || [ $written -lt "$records" ]; do
    if [ $n -ge $slots ]; then
        echo "FULL"
        idle
    fi
    yes "$(printf '%-127s' "MPREC $n $boot $(digest $n $boot)")" | head -n 32 >/tmp/rec
    # O_DIRECT (QEMU sees the write itself, not a page cache) and fsync (a flush: QEMU's
    # cache=none only bypasses the host's cache, the flush makes the write durable).
    if dd if=/tmp/rec of=/dev/vda bs=4096 seek=$n count=1 oflag=direct conv=notrunc,fsync 2>/dev/null; then
        echo "REC $n"
        n=$((n + 1)) written=$((written + 1))
    else
        echo "WERR $n"
        sleep 1
    fi
    [ -n "$delay" ] && sleep "$delay"
done
off records
idle
