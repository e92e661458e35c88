// SPDX-License-Identifier: GPL-2.0
/*
 * C shim of persona-vfio-pci: what Rust cannot express out of tree (the pci_driver with its ID
 * table and sysfs attribute group, the module's string parameter, trampolines and the
 * vfio_migration_ops table for callbacks that take a C enum, whose kCFI type Rust cannot give),
 * wrappers for what is a macro or a static inline in C, and nothing else. Every behaviour is a
 * pvp_rs_* function in Rust; the vfio_device_ops, vfio_log_ops, data fd file_operations and
 * region tables are built in Rust (src/driver/vfio).
 * Module init/exit and MODULE_LICENSE belong to the Rust crate root (module! macro).
 */
#include <linux/build_bug.h>
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/iommu.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/pci.h>
#include <linux/pci-ats.h>
#include <linux/pm_runtime.h>
#include <linux/vfio.h>
#include <linux/vfio_pci_core.h>
#include "pvp_shim.h"

#ifndef CONFIG_IOMMUFD
#error "persona-vfio-pci needs CONFIG_IOMMUFD (the cdev interface and PASID attach go through it)"
#endif

/* Rust relies on this: a pointer to the vfio_device is a pointer to our whole container. */
static_assert(offsetof(struct vfio_pci_core_device, vdev) == 0);

size_t pvp_shim_core_device_size(void)
{
	return sizeof(struct vfio_pci_core_device);
}

size_t pvp_shim_core_device_align(void)
{
	return __alignof__(struct vfio_pci_core_device);
}

/*
 * Override-only IDs: they match only when driver_override names this driver, as for every vfio-pci
 * variant, and modpost turns them into vfio_pci: aliases that management tools use to pick a
 * variant. Any other function binds through driver_override alone (the PCI core then matches
 * every device), exactly as with vfio-pci; no wildcard entry here, so our alias never competes
 * with vfio-pci's for devices we add nothing to.
 */
static const struct pci_device_id pvp_shim_ids[] = {
	{ PCI_DRIVER_OVERRIDE_DEVICE_VFIO(0x1234, 0x11e8) },	/* QEMU edu (vendor 0x1234 has no pci_ids.h name) */
	{ PCI_DRIVER_OVERRIDE_DEVICE_VFIO(PCI_VENDOR_ID_REDHAT_QUMRANET, 0x1110) },	/* QEMU ivshmem */
	{}
};
MODULE_DEVICE_TABLE(pci, pvp_shim_ids);

/* sysfs: /sys/bus/pci/devices/<bdf>/persona, created by the driver core while bound. */
static ssize_t persona_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return pvp_rs_persona_show(dev, buf);
}

static ssize_t persona_store(struct device *dev, struct device_attribute *attr, const char *buf,
			     size_t count)
{
	return pvp_rs_persona_store(dev, buf, count);
}
static DEVICE_ATTR_RW(persona);

static struct attribute *pvp_shim_dev_attrs[] = {
	&dev_attr_persona.attr,
	NULL,
};
ATTRIBUTE_GROUPS(pvp_shim_dev);

static char pvp_shim_default_persona_param[64] = "auto";
module_param_string(default_persona, pvp_shim_default_persona_param,
		    sizeof(pvp_shim_default_persona_param), 0444);
MODULE_PARM_DESC(default_persona, "Persona selected at bind: name@major.minor or auto (default)");

const char *pvp_shim_default_persona(void)
{
	return pvp_shim_default_persona_param;
}

/*
 * Trampoline: error_detected takes a C enum, which kCFI types differently in a Rust callback. Rust
 * gets the channel state as a number; vfio-pci-core then signals the user as for vfio-pci.
 */
static pci_ers_result_t pvp_shim_error_detected(struct pci_dev *pdev, pci_channel_state_t state)
{
	pvp_rs_error_detected(pdev, (__force unsigned int)state);
	return vfio_pci_core_aer_err_detected(pdev, state);
}

static const struct pci_error_handlers pvp_shim_err_handlers = {
	.error_detected	= pvp_shim_error_detected,
	.reset_prepare	= pvp_rs_reset_prepare,
	.reset_done	= pvp_rs_reset_done,
};

/* Trampoline: the ID entry carries nothing Rust needs, so Rust's probe takes the device only. */
static int pvp_shim_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	return pvp_rs_probe(pdev);
}

static struct pci_driver pvp_shim_pci_driver = {
	.name			= "persona-vfio-pci",
	.id_table		= pvp_shim_ids,
	.probe			= pvp_shim_probe,
	.remove			= pvp_rs_remove,
	.sriov_configure	= pvp_rs_sriov_configure,
	.err_handler		= &pvp_shim_err_handlers,
	.driver_managed_dma	= true,
	.dev_groups		= pvp_shim_dev_groups,
};

int pvp_shim_register_driver(void)
{
	return pci_register_driver(&pvp_shim_pci_driver);
}

void pvp_shim_unregister_driver(void)
{
	pci_unregister_driver(&pvp_shim_pci_driver);
}

void pvp_shim_put_device(struct vfio_pci_core_device *vdev)
{
	vfio_put_device(&vdev->vdev);
}

void pvp_shim_set_drvdata(struct pci_dev *pdev, struct vfio_pci_core_device *vdev)
{
	dev_set_drvdata(&pdev->dev, vdev);
}

struct vfio_pci_core_device *pvp_shim_drvdata(struct pci_dev *pdev)
{
	return dev_get_drvdata(&pdev->dev);
}

struct pci_dev *pvp_shim_pdev(struct vfio_pci_core_device *vdev)
{
	return vdev->pdev;
}

struct vfio_pci_core_device *pvp_shim_dev_drvdata(struct device *dev)
{
	return dev_get_drvdata(dev);
}

int pvp_shim_vconfig_pin(struct vfio_pci_core_device *vdev)
{
	return vdev->vconfig ? vdev->vconfig[PCI_INTERRUPT_PIN] : -1;
}

bool pvp_shim_intx_absent(struct vfio_pci_core_device *vdev)
{
	struct pci_dev *pdev = vdev->pdev;

	return !IS_ENABLED(CONFIG_VFIO_PCI_INTX) || vdev->nointx || pdev->is_virtfn ||
	       pdev->irq == IRQ_NOTCONNECTED;
}

void pvp_shim_pasid_info(struct pci_dev *pdev, u32 *max_pasids, int *status)
{
	*max_pasids = pdev->dev.iommu ? pdev->dev.iommu->max_pasids : 0;
	*status = *max_pasids ? pci_pasid_status(pdev) : 0;
}

/*
 * Migration. The state callbacks take a C enum, whose kCFI type hash Rust cannot produce out of
 * tree: these trampolines pass it on as a u32. The table is set only for devices Rust gives
 * migration flags to, before registration (vfio_pci_core_register_device() checks the table).
 */
static struct file *pvp_shim_mig_set_state(struct vfio_device *vdev,
					   enum vfio_device_mig_state new_state)
{
	return pvp_rs_migration_set_state(vdev, new_state);
}

static int pvp_shim_mig_get_state(struct vfio_device *vdev,
				  enum vfio_device_mig_state *curr_state)
{
	u32 state;
	int ret = pvp_rs_migration_get_state(vdev, &state);

	if (!ret)
		*curr_state = state;
	return ret;
}

static const struct vfio_migration_ops pvp_shim_mig_ops = {
	.migration_set_state		= pvp_shim_mig_set_state,
	.migration_get_state		= pvp_shim_mig_get_state,
	.migration_get_data_size	= pvp_rs_migration_get_data_size,
};

void pvp_shim_enable_migration(struct vfio_pci_core_device *vdev, u32 flags)
{
	vdev->vdev.migration_flags = flags;
	vdev->vdev.mig_ops = &pvp_shim_mig_ops;
}

/*
 * Device dirty page logging: Rust builds the vfio_log_ops table (no C enum crosses it) and installs
 * it with the migration ops, before registration. Reports go through iova_bitmap_set(), exported
 * in IOMMUFD's symbol namespace.
 */
MODULE_IMPORT_NS("IOMMUFD");

void pvp_shim_set_log_ops(struct vfio_pci_core_device *vdev, const struct vfio_log_ops *ops)
{
	vdev->vdev.log_ops = ops;
}

int pvp_shim_mig_next_state(struct vfio_device *vdev, u32 cur, u32 new, u32 *next)
{
	enum vfio_device_mig_state n;
	int ret = vfio_mig_get_next_state(vdev, cur, new, &n);

	if (!ret)
		*next = n;
	return ret;
}

bool pvp_shim_precopy_info_v2(struct vfio_device *vdev)
{
	return vdev->precopy_info_v2;
}

/* vfio-pci-core's map of a BAR, for vfio_pci_core_ioread*() and iowrite*(); an ERR_PTR. */
void __iomem *pvp_shim_bar_iomap(struct vfio_pci_core_device *vdev, unsigned int bar)
{
	return vfio_pci_core_get_iomap(vdev, bar);
}

void pvp_shim_memory_write_lock(struct vfio_pci_core_device *vdev)
{
	down_write(&vdev->memory_lock);
}

void pvp_shim_memory_write_unlock(struct vfio_pci_core_device *vdev)
{
	up_write(&vdev->memory_lock);
}

int pvp_shim_pm_get(struct vfio_pci_core_device *vdev)
{
	return pm_runtime_resume_and_get(&vdev->pdev->dev);
}

void pvp_shim_pm_put(struct vfio_pci_core_device *vdev)
{
	pm_runtime_put(&vdev->pdev->dev);
}

u64 pvp_shim_bar_len(struct vfio_pci_core_device *vdev, unsigned int bar)
{
	return bar < PCI_STD_NUM_BARS ? pci_resource_len(vdev->pdev, bar) : 0;
}

/* The VFIO region index an mmap() of the device file addresses. */
u64 pvp_shim_vma_region_index(struct vm_area_struct *vma)
{
	return vma->vm_pgoff >> (VFIO_PCI_OFFSET_SHIFT - PAGE_SHIFT);
}

void pvp_shim_vma_range(struct vm_area_struct *vma, u64 *offset, u64 *len)
{
	u64 pgoff = vma->vm_pgoff & ((1ULL << (VFIO_PCI_OFFSET_SHIFT - PAGE_SHIFT)) - 1);

	*offset = pgoff << PAGE_SHIFT;
	*len = vma->vm_end - vma->vm_start;
}

void pvp_shim_resource(struct pci_dev *pdev, int i, u64 *len, u64 *flags)
{
	*len = pci_resource_len(pdev, i);
	*flags = pci_resource_flags(pdev, i);
}
