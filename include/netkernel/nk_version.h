/* SPDX-License-Identifier: GPL-2.0 */
/*
 * NetKernel's one version string: hostengine --version, nkctl --version,
 * MODULE_VERSION of af_netkernel.ko and nsm_kernel.ko, and the Debian
 * packages (debian/changelog must name the same version; make deb checks).
 * It names the release, not the wire protocol (NK_PROTO_VERSION).
 */
#ifndef _NETKERNEL_NK_VERSION_H
#define _NETKERNEL_NK_VERSION_H

#define NK_VERSION	"0.2.0"

#endif /* _NETKERNEL_NK_VERSION_H */
