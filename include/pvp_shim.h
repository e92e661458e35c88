/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Interface between the C shim (src/shim/pvp_shim.c) and the Rust driver.
 *
 * The shim holds what Rust cannot express out of tree: the static pci_driver with its ID table and
 * attribute group, the string module parameter, wrappers for static inline functions and macros,
 * and trampolines and the table where a C enum crosses the boundary (kCFI gives Rust callbacks
 * taking a C enum another type hash). It holds no logic.
 * Symbols the shim defines are pvp_shim_*; the Rust functions its tables call are pvp_rs_*.
 */
#ifndef PVP_SHIM_H
#define PVP_SHIM_H

#include <linux/types.h>
#include <linux/uuid.h>

struct device;
struct pci_dev;
struct vfio_device;
struct vfio_pci_core_device;
struct vfio_log_ops;
struct vm_area_struct;
struct file;

/* --- Provided by the shim --- */

/* Layout facts Rust checks its container against. */
size_t pvp_shim_core_device_size(void);
size_t pvp_shim_core_device_align(void);

/* pci_register_driver() is a macro naming THIS_MODULE and KBUILD_MODNAME. */
int pvp_shim_register_driver(void);
void pvp_shim_unregister_driver(void);

/* vfio_put_device() of a core device (an inline); dev_set_drvdata()/dev_get_drvdata(). */
void pvp_shim_put_device(struct vfio_pci_core_device *vdev);
void pvp_shim_set_drvdata(struct pci_dev *pdev, struct vfio_pci_core_device *vdev);
struct vfio_pci_core_device *pvp_shim_drvdata(struct pci_dev *pdev);
struct pci_dev *pvp_shim_pdev(struct vfio_pci_core_device *vdev);

/* The PCI function of a core device, and the core device behind a bound function's device. */
struct vfio_pci_core_device *pvp_shim_dev_drvdata(struct device *dev);

/* IOMMU PASID support for the function: max PASIDs the IOMMU gives it, PASID control status. */
void pvp_shim_pasid_info(struct pci_dev *pdev, u32 *max_pasids, int *status);

/*
 * Interrupt Pin facts: vfio-pci-core's own copy (vconfig, which exists from enable to disable),
 * or -1 without one; and whether vfio_config_init() will zero it for a reason known before
 * enable (no INTx support built in, nointx, a VF, IRQ_NOTCONNECTED): IS_ENABLED, a bitfield and
 * IRQ_NOTCONNECTED are C's. An irq of 0 is not one: a function not yet enabled (a hot-plugged
 * one, for instance) gets its IRQ routed at enable.
 */
int pvp_shim_vconfig_pin(struct vfio_pci_core_device *vdev);
bool pvp_shim_intx_absent(struct vfio_pci_core_device *vdev);

/* The default_persona module parameter (a string: Rust's module! has no string parameters). */
const char *pvp_shim_default_persona(void);

/*
 * Migration: install the migration ops (trampolines to the pvp_rs_migration_* functions) with
 * these VFIO_MIGRATION_* flags; call before registration. The next single arc towards @new, by
 * vfio_mig_get_next_state().
 */
void pvp_shim_enable_migration(struct vfio_pci_core_device *vdev, u32 flags);
int pvp_shim_mig_next_state(struct vfio_device *vdev, u32 cur, u32 new, u32 *next);

/* Dirty page logging: install Rust's log ops table; before registration. */
void pvp_shim_set_log_ops(struct vfio_pci_core_device *vdev, const struct vfio_log_ops *ops);

/* Whether the user opted in to VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2 (device open). */
bool pvp_shim_precopy_info_v2(struct vfio_device *vdev);

/* vfio-pci-core's map of a BAR (vfio_pci_core_get_iomap()), for vfio_pci_core_io*(); ERR_PTR. */
void __iomem *pvp_shim_bar_iomap(struct vfio_pci_core_device *vdev, unsigned int bar);
/* down_write()/up_write() of vfio-pci-core's memory_lock (the structure is opaque to Rust). */
void pvp_shim_memory_write_lock(struct vfio_pci_core_device *vdev);
void pvp_shim_memory_write_unlock(struct vfio_pci_core_device *vdev);
/* pm_runtime_resume_and_get() and pm_runtime_put() of the function (static inlines). */
int pvp_shim_pm_get(struct vfio_pci_core_device *vdev);
void pvp_shim_pm_put(struct vfio_pci_core_device *vdev);
u64 pvp_shim_bar_len(struct vfio_pci_core_device *vdev, unsigned int bar);
u64 pvp_shim_vma_region_index(struct vm_area_struct *vma);
/* Offset inside its region and length of a mapping being set up. */
void pvp_shim_vma_range(struct vm_area_struct *vma, u64 *offset, u64 *len);
/* pci_resource_len() and pci_resource_flags() of resource @i (0..5 BARs, 6 the ROM). */
void pvp_shim_resource(struct pci_dev *pdev, int i, u64 *len, u64 *flags);

/* --- Provided by Rust (src/driver/vfio/ops.rs): what the shim's tables call --- */

int pvp_rs_probe(struct pci_dev *pdev);
void pvp_rs_remove(struct pci_dev *pdev);
int pvp_rs_sriov_configure(struct pci_dev *pdev, int nr_virtfn);
void pvp_rs_reset_prepare(struct pci_dev *pdev);
void pvp_rs_reset_done(struct pci_dev *pdev);
void pvp_rs_error_detected(struct pci_dev *pdev, unsigned int state);
struct file *pvp_rs_migration_set_state(struct vfio_device *vdev, u32 new_state);
int pvp_rs_migration_get_state(struct vfio_device *vdev, u32 *state);
int pvp_rs_migration_get_data_size(struct vfio_device *vdev, unsigned long *stop_copy_length);

/* --- Provided by Rust's driver glue (src/driver/sys/attr.rs): the persona attribute --- */

ssize_t pvp_rs_persona_show(struct device *dev, char *buf);
ssize_t pvp_rs_persona_store(struct device *dev, const char *buf, size_t count);

#endif /* PVP_SHIM_H */
