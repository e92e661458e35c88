/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Interface between the C shim (src/shim/pvp_shim.c) and the Rust driver.
 *
 * The shim holds what Rust cannot express: static ops tables, wrappers for static inline
 * functions and macros, and trampolines where a C enum crosses the boundary. It holds no logic.
 * Symbols the shim defines are pvp_shim_*; Rust functions it calls are pvp_rs_*.
 */
#ifndef PVP_SHIM_H
#define PVP_SHIM_H

#include <linux/types.h>

struct vfio_pci_core_device;

/* sizeof/alignof the container VFIO allocates for us; Rust checks its own layout against them. */
size_t pvp_shim_core_device_size(void);
size_t pvp_shim_core_device_align(void);

#endif /* PVP_SHIM_H */
