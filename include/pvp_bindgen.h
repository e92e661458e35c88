/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Input of the build-time bindgen run (see Kbuild): the VFIO headers and the shim's interface.
 */
#include <linux/anon_inodes.h>
#include <linux/fs.h>
#include <linux/vfio.h>
/* Before vfio_pci_core.h: it declares vfio_pci_core_{ioread,iowrite}64 only when these exist. */
#include <linux/io-64-nonatomic-lo-hi.h>
#include <linux/vfio_pci_core.h>
#include "pvp_shim.h"

/* ioctl numbers are _IO() macros, which bindgen drops: their values, under our own names. */
static const unsigned int PVP_VFIO_DEVICE_IOEVENTFD = VFIO_DEVICE_IOEVENTFD;
static const unsigned int PVP_VFIO_MIG_GET_PRECOPY_INFO = VFIO_MIG_GET_PRECOPY_INFO;
