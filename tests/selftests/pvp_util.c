// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers shared by the persona-vfio-pci selftests (see pvp_util.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "pvp_util.h"

const char *pvp_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

int pvp_write_file(const char *path, const char *val)
{
	size_t n = strlen(val);
	ssize_t w;
	int fd, err = 0;

	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	w = write(fd, val, n);
	if (w < 0)
		err = -errno;
	else if ((size_t)w != n)
		err = -EIO;
	close(fd);
	return err;
}

int pvp_read_file(const char *path, char *buf, size_t len)
{
	ssize_t r;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	r = read(fd, buf, len - 1);
	if (r < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	close(fd);
	buf[r] = 0;
	if (r && buf[r - 1] == '\n')
		buf[--r] = 0;
	return 0;
}

bool pvp_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

int pvp_driver_of(const char *bdf, char *buf, size_t len)
{
	char path[PATH_MAX], target[PATH_MAX];
	const char *base;
	ssize_t n;

	snprintf(path, sizeof(path), PVP_PCI_DEVICES "/%s/driver", bdf);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = 0;
	base = strrchr(target, '/');
	snprintf(buf, len, "%s", base ? base + 1 : target);
	return 0;
}

bool pvp_driver_registered(const char *driver)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), PVP_PCI_DRIVERS "/%s", driver);
	return pvp_exists(path);
}

int pvp_unbind(const char *bdf)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), PVP_PCI_DEVICES "/%s/driver/unbind", bdf);
	if (!pvp_exists(path))
		return 0;
	return pvp_write_file(path, bdf);
}

int pvp_bind(const char *bdf, const char *driver)
{
	char path[PATH_MAX], cur[256];
	int err;

	if (pvp_driver_of(bdf, cur, sizeof(cur)) == 0 && !strcmp(cur, driver))
		return 0;
	snprintf(path, sizeof(path), PVP_PCI_DEVICES "/%s/driver_override", bdf);
	err = pvp_write_file(path, driver);
	if (err)
		return err;
	err = pvp_unbind(bdf);
	if (err)
		return err;
	err = pvp_write_file("/sys/bus/pci/drivers_probe", bdf);
	if (err)
		return err;
	err = pvp_driver_of(bdf, cur, sizeof(cur));
	if (err)
		return err;
	return strcmp(cur, driver) ? -EIO : 0;
}

int pvp_release(const char *bdf)
{
	char path[PATH_MAX];
	int err;

	err = pvp_unbind(bdf);
	if (err)
		return err;
	snprintf(path, sizeof(path), PVP_PCI_DEVICES "/%s/driver_override", bdf);
	return pvp_write_file(path, "\n");
}

int pvp_cdev_name(const char *bdf, char *buf, size_t len)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int err = -ENOENT;

	snprintf(path, sizeof(path), PVP_PCI_DEVICES "/%s/vfio-dev", bdf);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (!strncmp(e->d_name, "vfio", 4)) {
			snprintf(buf, len, "%s", e->d_name);
			err = 0;
			break;
		}
	}
	closedir(d);
	return err;
}

int pvp_cdev_path(const char *bdf, char *buf, size_t len)
{
	char name[64];
	int err;

	err = pvp_cdev_name(bdf, name, sizeof(name));
	if (err)
		return err;
	snprintf(buf, len, "/dev/vfio/devices/%s", name);
	return 0;
}

int pvp_cdev_check_node(const char *bdf)
{
	char name[64], path[PATH_MAX], dev[64];
	unsigned int maj, min;
	struct stat st;
	int err;

	err = pvp_cdev_name(bdf, name, sizeof(name));
	if (err)
		return err;
	snprintf(path, sizeof(path), PVP_PCI_DEVICES "/%s/vfio-dev/%s/dev", bdf, name);
	err = pvp_read_file(path, dev, sizeof(dev));
	if (err)
		return err;
	if (sscanf(dev, "%u:%u", &maj, &min) != 2)
		return -EINVAL;
	snprintf(path, sizeof(path), "/dev/vfio/devices/%s", name);
	if (stat(path, &st))
		return -errno;
	if (!S_ISCHR(st.st_mode) || major(st.st_rdev) != maj || minor(st.st_rdev) != min)
		return -EINVAL;
	return 0;
}

int pvp_cdev_open(const char *bdf)
{
	char path[PATH_MAX];
	int fd, err;

	err = pvp_cdev_path(bdf, path, sizeof(path));
	if (err)
		return err;
	fd = open(path, O_RDWR | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int pvp_iommufd_open(void)
{
	int fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int pvp_ioas_alloc(int iommufd, uint32_t *ioas_id)
{
	struct iommu_ioas_alloc a = { .size = sizeof(a) };

	if (ioctl(iommufd, IOMMU_IOAS_ALLOC, &a))
		return -errno;
	*ioas_id = a.out_ioas_id;
	return 0;
}

int pvp_bind_iommufd(int devfd, int iommufd, uint32_t *devid)
{
	struct vfio_device_bind_iommufd b = {
		.argsz = sizeof(b),
		.iommufd = iommufd,
	};

	if (ioctl(devfd, VFIO_DEVICE_BIND_IOMMUFD, &b))
		return -errno;
	if (devid)
		*devid = b.out_devid;
	return 0;
}

int pvp_attach_pt(int devfd, uint32_t pt_id, uint32_t *out_pt_id)
{
	struct vfio_device_attach_iommufd_pt a = {
		.argsz = sizeof(a),
		.pt_id = pt_id,
	};

	if (ioctl(devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a))
		return -errno;
	if (out_pt_id)
		*out_pt_id = a.pt_id;
	return 0;
}

int pvp_detach_pt(int devfd)
{
	struct vfio_device_detach_iommufd_pt d = { .argsz = sizeof(d) };

	return ioctl(devfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &d) ? -errno : 0;
}

int pvp_dev_open(const char *bdf, struct pvp_dev *d)
{
	int err;

	memset(d, 0, sizeof(*d));
	d->devfd = -1;
	d->iommufd = pvp_iommufd_open();
	if (d->iommufd < 0)
		return d->iommufd;
	d->devfd = pvp_cdev_open(bdf);
	if (d->devfd < 0) {
		err = d->devfd;
		goto out;
	}
	err = pvp_ioas_alloc(d->iommufd, &d->ioas_id);
	if (err)
		goto out;
	err = pvp_bind_iommufd(d->devfd, d->iommufd, &d->devid);
	if (err)
		goto out;
	err = pvp_attach_pt(d->devfd, d->ioas_id, &d->hwpt_id);
	if (err)
		goto out;
	return 0;
out:
	pvp_dev_close(d);
	return err;
}

void pvp_dev_close(struct pvp_dev *d)
{
	if (d->devfd >= 0)
		close(d->devfd);
	if (d->iommufd >= 0)
		close(d->iommufd);
	d->devfd = -1;
	d->iommufd = -1;
}

/*
 * The VFIO info ioctls share one protocol: the caller passes argsz; when capabilities do not
 * fit the kernel raises argsz and the caller asks again with a larger buffer.
 */
static int pvp_info_query(int devfd, unsigned long cmd, size_t minsz, uint32_t index,
			  size_t index_off, void **buf, size_t *len)
{
	size_t sz = minsz;
	uint32_t argsz;
	int tries;

	*buf = NULL;
	for (tries = 0; tries < 4; tries++) {
		uint8_t *p = calloc(1, sz);

		if (!p)
			return -ENOMEM;
		argsz = sz;
		memcpy(p, &argsz, sizeof(argsz));
		if (index_off)
			memcpy(p + index_off, &index, sizeof(index));
		if (ioctl(devfd, cmd, p)) {
			int err = -errno;

			free(p);
			return err;
		}
		memcpy(&argsz, p, sizeof(argsz));
		if (argsz <= sz) {
			*buf = p;
			*len = argsz < minsz ? minsz : argsz;
			return 0;
		}
		free(p);
		sz = argsz;
	}
	return -EOVERFLOW;
}

int pvp_device_info(int devfd, void **buf, size_t *len)
{
	return pvp_info_query(devfd, VFIO_DEVICE_GET_INFO, sizeof(struct vfio_device_info), 0, 0,
			      buf, len);
}

int pvp_region_info(int devfd, uint32_t index, void **buf, size_t *len)
{
	return pvp_info_query(devfd, VFIO_DEVICE_GET_REGION_INFO,
			      sizeof(struct vfio_region_info), index,
			      offsetof(struct vfio_region_info, index), buf, len);
}

int pvp_irq_info(int devfd, uint32_t index, void **buf, size_t *len)
{
	return pvp_info_query(devfd, VFIO_DEVICE_GET_IRQ_INFO, sizeof(struct vfio_irq_info),
			      index, offsetof(struct vfio_irq_info, index), buf, len);
}

int pvp_config_size(int devfd, uint64_t *offset, uint64_t *size)
{
	struct vfio_region_info *ri;
	size_t len;
	void *buf;
	int err;

	err = pvp_region_info(devfd, VFIO_PCI_CONFIG_REGION_INDEX, &buf, &len);
	if (err)
		return err;
	ri = buf;
	*offset = ri->offset;
	*size = ri->size;
	free(buf);
	return 0;
}

int pvp_config_read(int devfd, uint8_t *buf, size_t size, unsigned int width)
{
	uint64_t off, rsize;
	size_t pos;
	int err;

	err = pvp_config_size(devfd, &off, &rsize);
	if (err)
		return err;
	if (size > rsize)
		return -ERANGE;
	for (pos = 0; pos + width <= size; pos += width) {
		ssize_t r = pread(devfd, buf + pos, width, off + pos);

		if (r < 0)
			return -errno;
		if ((size_t)r != width)
			return -EIO;
	}
	return 0;
}

/* A VFIO_DEVICE_FEATURE buffer with room for any migration feature's payload. */
struct pvp_feature {
	struct vfio_device_feature f;
	uint64_t data[2];
};

static int pvp_feature(int devfd, uint32_t flags, size_t payload, struct pvp_feature *b)
{
	b->f.argsz = sizeof(b->f) + payload;
	b->f.flags = flags;
	if (ioctl(devfd, VFIO_DEVICE_FEATURE, &b->f))
		return -errno;
	return 0;
}

int pvp_mig_set(int devfd, uint32_t state, int *data_fd)
{
	struct pvp_feature b = {};
	struct vfio_device_feature_mig_state *m = (void *)b.f.data;
	int err;

	m->device_state = state;
	m->data_fd = -1;
	err = pvp_feature(devfd, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			  sizeof(*m), &b);
	if (data_fd)
		*data_fd = err ? -1 : m->data_fd;
	else if (!err && m->data_fd >= 0)
		close(m->data_fd);
	return err;
}

int pvp_mig_get(int devfd, uint32_t *state)
{
	struct pvp_feature b = {};
	struct vfio_device_feature_mig_state *m = (void *)b.f.data;
	int err;

	err = pvp_feature(devfd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			  sizeof(*m), &b);
	if (!err)
		*state = m->device_state;
	return err;
}

int pvp_mig_flags(int devfd, uint64_t *flags)
{
	struct pvp_feature b = {};
	struct vfio_device_feature_migration *m = (void *)b.f.data;
	int err;

	err = pvp_feature(devfd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION,
			  sizeof(*m), &b);
	if (!err)
		*flags = m->flags;
	return err;
}

int pvp_mig_data_size(int devfd, uint64_t *len)
{
	struct pvp_feature b = {};
	struct vfio_device_feature_mig_data_size *m = (void *)b.f.data;
	int err;

	err = pvp_feature(devfd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
			  sizeof(*m), &b);
	if (!err)
		*len = m->stop_copy_length;
	return err;
}

int pvp_precopy_info(int fd, uint32_t argsz, uint64_t *initial, uint64_t *dirty)
{
	struct vfio_precopy_info info = { .argsz = argsz };

	if (ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &info))
		return -errno;
	*initial = info.initial_bytes;
	*dirty = info.dirty_bytes;
	return 0;
}

ssize_t pvp_read_all(int fd, uint8_t *buf, size_t max, size_t chunk)
{
	size_t done = 0;

	for (;;) {
		size_t want = chunk < max - done ? chunk : max - done;
		ssize_t n = read(fd, buf + done, want);

		if (n < 0)
			return -errno;
		if (n == 0 || want == 0)
			return done;
		done += n;
	}
}

int pvp_write_all(int fd, const uint8_t *buf, size_t len, size_t chunk)
{
	size_t done = 0;

	while (done < len) {
		size_t want = chunk < len - done ? chunk : len - done;
		ssize_t n = write(fd, buf + done, want);

		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += n;
	}
	return 0;
}

int pvp_device_reset(int devfd)
{
	return ioctl(devfd, VFIO_DEVICE_RESET) ? -errno : 0;
}

int pvp_region_offset(int devfd, uint32_t index, uint64_t *offset, uint32_t *flags)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = index };

	if (ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &ri))
		return -errno;
	*offset = ri.offset;
	if (flags)
		*flags = ri.flags;
	return 0;
}

int pvp_ioas_map(int iommufd, uint32_t ioas_id, void *va, uint64_t len, uint64_t iova)
{
	struct iommu_ioas_map map = {
		.size = sizeof(map),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = ioas_id,
		.user_va = (uintptr_t)va,
		.length = len,
		.iova = iova,
	};

	return ioctl(iommufd, IOMMU_IOAS_MAP, &map) ? -errno : 0;
}

long pvp_module_refcnt(const char *module)
{
	char path[PATH_MAX], val[32];
	int err;

	snprintf(path, sizeof(path), "/sys/module/%s/refcnt", module);
	err = pvp_read_file(path, val, sizeof(val));
	if (err)
		return err;
	return strtol(val, NULL, 10);
}

int pvp_module_state(const char *module, char *buf, size_t len)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "/sys/module/%s/initstate", module);
	return pvp_read_file(path, buf, len);
}

bool pvp_module_loaded(const char *module)
{
	char state[32];

	return pvp_module_state(module, state, sizeof(state)) == 0;
}

int pvp_delete_module(const char *module, unsigned int flags)
{
	return syscall(SYS_delete_module, module, flags) ? -errno : 0;
}

int pvp_load_module(const char *ko)
{
	int fd, err = 0;

	fd = open(ko, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (syscall(SYS_finit_module, fd, "", 0))
		err = -errno;
	close(fd);
	return err;
}
