// SPDX-License-Identifier: GPL-2.0
/*
 * C shim of persona-vfio-pci: tables, inline wrappers and enum trampolines, never logic.
 * Module init/exit and the license belong to the Rust crate root (module! macro).
 */
#include <linux/vfio_pci_core.h>
#include "pvp_shim.h"

size_t pvp_shim_core_device_size(void)
{
	return sizeof(struct vfio_pci_core_device);
}

size_t pvp_shim_core_device_align(void)
{
	return __alignof__(struct vfio_pci_core_device);
}
