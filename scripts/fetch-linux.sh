#!/bin/sh
# usage: scripts/fetch-linux.sh [OUT]      (OUT defaults to build/linux)
#
# Fetches the guests luavmm boots as a real machine, from Debian's mirrors:
#   OUT/bzImage             the kernel of linux-image-cloud-amd64 (its boot/vmlinuz-*)
#   OUT/vmlinux             the same kernel uncompressed: the ELF inside the bzImage,
#                           which can be entered without the decompressor
#   OUT/initramfs.cpio.gz   busybox-static with an /init that prints LUAVMM-INIT-OK,
#                           runs a shell command and powers off
#   OUT/VERSIONS            what was fetched
# Each step is skipped when its output is already there, so running it again
# costs nothing; delete OUT to start over. Packages are fetched with
# `apt-get download` (no root needed) and unpacked with `dpkg-deb -x`; the
# package lists are refreshed (as root, or with sudo) only if a download fails.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/linux}
mkdir -p "$out/debs"
out=$(cd "$out" && pwd)

say() { echo "fetch-linux: $*" >&2; }
die() { say "$*"; exit 1; }

# Debian's kernel payload is LZ4 (CONFIG_KERNEL_LZ4, in the legacy frame
# format); xz, zstd and gzip cover the other usual choices. cpio packs the
# initramfs.
"$top/scripts/deps.sh" lz4 xz-utils zstd gzip cpio

# As root, apt would hand the download to its _apt user, who cannot write
# into OUT: keep it root (a download needs no root otherwise).
if [ "$(id -u)" = 0 ]; then sudo=""; nodrop="-o APT::Sandbox::User=root"; else sudo="sudo"; nodrop=""; fi

# The versioned package behind a metapackage: its first "Depends:" that
# starts with the given prefix.
resolve() {
  apt-cache depends "$1" 2>/dev/null |
    sed -n "s/^ *|\{0,1\}Depends: \($2[^ ]*\)\$/\1/p" | head -n 1
}

# Downloads package $1 into OUT/debs unless a .deb of it is there; prints its path.
download() {
  deb=$(ls "$out/debs/$1"_*.deb 2>/dev/null | head -n 1 || true)
  if [ -z "$deb" ]; then
    say "downloading $1"
    (cd "$out/debs" && apt-get download -q $nodrop "$1" >&2) ||
      { say "refreshing the package lists"; $sudo apt-get update >&2 &&
        (cd "$out/debs" && apt-get download -q $nodrop "$1" >&2); } ||
      die "cannot download $1"
    deb=$(ls "$out/debs/$1"_*.deb | head -n 1)
  fi
  echo "$deb"
}

# -- the kernel ---------------------------------------------------------------
if [ ! -s "$out/bzImage" ]; then
  pkg=$(resolve linux-image-cloud-amd64 linux-image-)
  if [ -z "$pkg" ]; then
    $sudo apt-get update >&2 || true
    pkg=$(resolve linux-image-cloud-amd64 linux-image-)
  fi
  [ -n "$pkg" ] || die "cannot resolve linux-image-cloud-amd64 (apt-cache depends)"
  deb=$(download "$pkg")
  rm -rf "$out/kernel-pkg"
  dpkg-deb -x "$deb" "$out/kernel-pkg"
  vmlinuz=$(ls "$out"/kernel-pkg/boot/vmlinuz-* | head -n 1)
  [ -f "$vmlinuz" ] || die "$deb has no boot/vmlinuz-*"
  cp "$vmlinuz" "$out/bzImage.tmp" && mv "$out/bzImage.tmp" "$out/bzImage"
  cp "$out"/kernel-pkg/boot/config-* "$out/config" 2>/dev/null || true
  echo "kernel $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)" > "$out/VERSIONS.kernel"
  rm -rf "$out/kernel-pkg"
fi

# -- vmlinux: the payload of the bzImage, decompressed --------------------------
# The setup header says where the payload is (payload_offset at 0x248 and
# payload_length at 0x24c, from the start of the protected-mode code, which
# follows the (setup_sects + 1) sectors of real-mode setup). Its last 4 bytes
# are the uncompressed size, appended by the kernel's build; the rest is one
# compressed stream, recognised by its magic.
u8() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
if [ ! -s "$out/vmlinux" ]; then
  bz=$out/bzImage
  [ "$(od -An -c -j 514 -N4 "$bz" | tr -d ' ')" = HdrS ] || die "$bz: no HdrS setup header"
  sects=$(u8 "$bz" 497); [ "$sects" = 0 ] && sects=4
  poff=$(u32 "$bz" 584); plen=$(u32 "$bz" 588)
  start=$(( (sects + 1) * 512 + poff ))
  size=$(wc -c < "$bz")
  { [ "$plen" -gt 4 ] && [ $((start + plen)) -le "$size" ]; } ||
    die "$bz: payload_offset $poff / payload_length $plen outside the file ($size bytes)"
  tail -c +$((start + 1)) "$bz" | head -c "$plen" > "$out/payload"
  magic=$(od -An -tx1 -N6 "$out/payload" | tr -d ' ')
  case $magic in
    fd377a585a00*) fmt=xz; unpack="xz -dc --single-stream" ;;
    28b52ffd*) fmt=zstd; unpack="zstd -dcq" ;;
    1f8b*) fmt=gzip; unpack="gzip -dc" ;;
    02214c18*) fmt=lz4; unpack="lz4 -dcq" ;;
    *) die "$bz: unknown payload compression (magic $magic)" ;;
  esac
  want=$(u32 "$out/payload" $((plen - 4)))
  head -c $((plen - 4)) "$out/payload" | $unpack > "$out/vmlinux.tmp" ||
    die "$bz: cannot decompress the $fmt payload"
  got=$(wc -c < "$out/vmlinux.tmp")
  [ "$got" -eq "$want" ] || die "$bz: payload is $got bytes uncompressed, its trailer says $want"
  [ "$(od -An -c -N4 "$out/vmlinux.tmp" | tr -d ' ')" = 177ELF ] ||
    die "$bz: the payload is not an ELF file"
  mv "$out/vmlinux.tmp" "$out/vmlinux"
  rm -f "$out/payload"
  echo "vmlinux from a $fmt payload of $plen bytes ($got bytes)" > "$out/VERSIONS.vmlinux"
fi

# -- the initramfs --------------------------------------------------------------
if [ ! -s "$out/initramfs.cpio.gz" ]; then
  deb=$(download busybox-static)
  root=$out/initramfs
  rm -rf "$root" "$out/busybox-pkg"
  dpkg-deb -x "$deb" "$out/busybox-pkg"
  mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys"
  cp "$out/busybox-pkg/bin/busybox" "$root/bin/busybox"
  rm -rf "$out/busybox-pkg"
  for cmd in sh mount echo cat uname poweroff; do ln -s busybox "$root/bin/$cmd"; done
  # No /dev/console node in the archive (making one needs root): /init
  # mounts devtmpfs and takes its console from there.
  cat > "$root/init" <<'EOF'
#!/bin/sh
mount -t devtmpfs dev /dev 2>/dev/null
exec 0</dev/console 1>/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys
echo "LUAVMM-INIT-OK $(uname -r)"
sh -c 'echo LUAVMM-SHELL-OK $((6 * 7))'
poweroff -f
EOF
  chmod 755 "$root/init"
  # Same inputs, same archive: no build-time dates in it.
  find "$root" -exec touch -h -d @0 {} +
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible -R 0:0) | gzip -9n \
    > "$out/initramfs.tmp"
  mv "$out/initramfs.tmp" "$out/initramfs.cpio.gz"
  rm -rf "$root"
  echo "busybox $(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)" > "$out/VERSIONS.busybox"
fi

cat "$out"/VERSIONS.kernel "$out"/VERSIONS.vmlinux "$out"/VERSIONS.busybox > "$out/VERSIONS" \
  2>/dev/null || true
sed 's/^/fetch-linux: /' "$out/VERSIONS" >&2
ls -l "$out/bzImage" "$out/vmlinux" "$out/initramfs.cpio.gz" | sed 's/^/fetch-linux: /' >&2
