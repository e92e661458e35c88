/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the persona-vfio-pci selftests: driver binding through sysfs, the vfio device
 * cdev, iommufd, VFIO info queries and module load/unload. Every function that can fail returns
 * 0 (or a non-negative value) on success and -errno on failure, so a test can assert the errno.
 */
#ifndef PVP_UTIL_H
#define PVP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PVP_PCI_DEVICES "/sys/bus/pci/devices"
#define PVP_PCI_DRIVERS "/sys/bus/pci/drivers"

/* getenv() that treats an empty value as unset. */
const char *pvp_env(const char *name);

/* Whole-file sysfs helpers; pvp_read_file strips one trailing newline. */
int pvp_write_file(const char *path, const char *val);
int pvp_read_file(const char *path, char *buf, size_t len);
bool pvp_exists(const char *path);

/* Driver binding: the name of BDF's driver (-ENOENT when unbound). */
int pvp_driver_of(const char *bdf, char *buf, size_t len);
bool pvp_driver_registered(const char *driver);
/* Unbind BDF from whatever driver it has (0 when it had none). */
int pvp_unbind(const char *bdf);
/* driver_override = driver, unbind, drivers_probe; -EIO if it ended up elsewhere. */
int pvp_bind(const char *bdf, const char *driver);
/* Unbind and clear driver_override. */
int pvp_release(const char *bdf);

/* The device's vfio cdev: "vfioN" from sysfs (-ENOENT without one), and its /dev path. */
int pvp_cdev_name(const char *bdf, char *buf, size_t len);
int pvp_cdev_path(const char *bdf, char *buf, size_t len);
/* The cdev's dev_t from sysfs (vfio-dev/vfioN/dev) against the /dev node's st_rdev. */
int pvp_cdev_check_node(const char *bdf);
/* open(2) of the device's cdev: fd or -errno. */
int pvp_cdev_open(const char *bdf);

/* iommufd */
int pvp_iommufd_open(void);
int pvp_ioas_alloc(int iommufd, uint32_t *ioas_id);
int pvp_bind_iommufd(int devfd, int iommufd, uint32_t *devid);
int pvp_attach_pt(int devfd, uint32_t pt_id, uint32_t *out_pt_id);
int pvp_detach_pt(int devfd);

/* A device opened the way a VMM does it: cdev + /dev/iommu + IOAS, bound and attached. */
struct pvp_dev {
	int devfd;
	int iommufd;
	uint32_t ioas_id;
	uint32_t devid;
	uint32_t hwpt_id;
};
int pvp_dev_open(const char *bdf, struct pvp_dev *d);
void pvp_dev_close(struct pvp_dev *d);

/*
 * VFIO info queries with capability chains: *buf (malloc'd, *len bytes = final argsz) holds the
 * whole reply. Returns 0 or -errno (then *buf is NULL).
 */
int pvp_device_info(int devfd, void **buf, size_t *len);
int pvp_region_info(int devfd, uint32_t index, void **buf, size_t *len);
int pvp_irq_info(int devfd, uint32_t index, void **buf, size_t *len);

/* Config space through the VFIO config region, in accesses of width 1, 2 or 4. */
int pvp_config_size(int devfd, uint64_t *offset, uint64_t *size);
int pvp_config_read(int devfd, uint8_t *buf, size_t size, unsigned int width);

/*
 * VFIO migration v2 (VFIO_DEVICE_FEATURE) and the data fd. pvp_mig_set puts the new data fd in
 * *data_fd (-1 when the arc opened none); with data_fd NULL a new fd is closed.
 */
int pvp_mig_set(int devfd, uint32_t state, int *data_fd);
int pvp_mig_get(int devfd, uint32_t *state);
int pvp_mig_flags(int devfd, uint64_t *flags);
int pvp_mig_data_size(int devfd, uint64_t *len);
/* VFIO_MIG_GET_PRECOPY_INFO on a data fd, with the given argsz. */
int pvp_precopy_info(int fd, uint32_t argsz, uint64_t *initial, uint64_t *dirty);
/* Reads a data fd to EOF in reads of @chunk bytes: the byte count, or -errno of a failed read. */
ssize_t pvp_read_all(int fd, uint8_t *buf, size_t max, size_t chunk);
/* Writes @len bytes in writes of @chunk bytes: 0, or -errno of the first failed write. */
int pvp_write_all(int fd, const uint8_t *buf, size_t len, size_t chunk);
/* VFIO_DEVICE_RESET: 0 or -errno. */
int pvp_device_reset(int devfd);
/* The file offset of region @index, and its flags. */
int pvp_region_offset(int devfd, uint32_t index, uint64_t *offset, uint32_t *flags);
/* IOMMU_IOAS_MAP of [va, va + len) at @iova, readable and writable. */
int pvp_ioas_map(int iommufd, uint32_t ioas_id, void *va, uint64_t len, uint64_t iova);

/* Modules: /sys/module/<m>/refcnt (-ENOENT when not loaded), unload, load. */
long pvp_module_refcnt(const char *module);
bool pvp_module_loaded(const char *module);
int pvp_module_state(const char *module, char *buf, size_t len);
int pvp_delete_module(const char *module, unsigned int flags);
int pvp_load_module(const char *ko);

#endif /* PVP_UTIL_H */
