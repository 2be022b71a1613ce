# SPDX-License-Identifier: GPL-2.0
#
# Sourced by deps.sh and vm-run.sh: the virtme-ng version, where deps.sh
# installs it when python3 refuses pip installs (PEP 668), and the vng to
# run.
VIRTME_NG_VERSION=1.42
VNG_VENV=${VHOST_BLK_CACHE:-$HOME/.cache/vhost-blk}/virtme-ng-$VIRTME_NG_VERSION

# The vng to run: the venv's once deps.sh made one, else vng on PATH.
vng_path() {
	if [ -x "$VNG_VENV/bin/vng" ]; then
		echo "$VNG_VENV/bin/vng"
	else
		echo vng
	fi
}
VNG=$(vng_path)
