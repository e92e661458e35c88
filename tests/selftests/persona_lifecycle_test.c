// SPDX-License-Identifier: GPL-2.0
/*
 * Driver life cycle of a vfio-pci(-core) driver, seen from user space: bind, unbind, rebind, the
 * vfio cdev appearing and disappearing, iommufd bind/attach, a second open of the cdev, unbind and
 * rmmod while a user holds the device, and the driver module's reference count after each case.
 *
 * The same program runs against persona-vfio-pci and, as the control, against vfio-pci: every
 * errno asserted here is the one vfio-pci gives on the test kernel.
 *
 * Environment:
 *   PVP_BDF     the PCI function (e.g. 0000:01:00.0)
 *   PVP_DRIVER  the driver to test (e.g. persona-vfio-pci or vfio-pci)
 *   PVP_MODULE  the module that provides the driver (e.g. persona_vfio_pci); without it the
 *               refcount checks and the rmmod cases are skipped
 *   PVP_KO      the module file, to load it again after the rmmod cases
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "pvp_util.h"

#define NFDS 4
#define NO_UNLOAD "PVP_MODULE and PVP_KO not both set: no module to unload and load again"

FIXTURE(lifecycle) {
	const char *bdf;
	const char *driver;
	const char *module;
	const char *ko;
	long refcnt0;		/* the module's refcnt before the case, -1 without PVP_MODULE */
	int fds[NFDS];		/* fds the case opened, closed by the teardown if it bails */
};

static int track(FIXTURE_DATA(lifecycle) *self, int fd)
{
	int i;

	for (i = 0; fd >= 0 && i < NFDS; i++) {
		if (self->fds[i] < 0) {
			self->fds[i] = fd;
			break;
		}
	}
	return fd;
}

static void untrack_close(FIXTURE_DATA(lifecycle) *self, int fd)
{
	int i;

	for (i = 0; i < NFDS; i++)
		if (self->fds[i] == fd)
			self->fds[i] = -1;
	close(fd);
}

static long ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* The module's refcnt now, or -1 when the case runs without PVP_MODULE. */
static long refcnt(FIXTURE_DATA(lifecycle) *self)
{
	return self->module ? pvp_module_refcnt(self->module) : -1;
}

/* The refcnt the module should have with @held device opens outstanding. */
static long refcnt_with(FIXTURE_DATA(lifecycle) *self, long held)
{
	return self->module ? self->refcnt0 + held : -1;
}

/* Reads vendor:device through the VFIO config region and compares them with sysfs. */
static int check_ids(const char *bdf, int devfd)
{
	char path[PATH_MAX], v[16], d[16], want[40], got[40];
	uint8_t cfg[4];
	int err;

	err = pvp_config_read(devfd, cfg, sizeof(cfg), 4);
	if (err)
		return err;
	snprintf(path, sizeof(path), PVP_PCI_DEVICES "/%s/vendor", bdf);
	if (pvp_read_file(path, v, sizeof(v)))
		return -EIO;
	snprintf(path, sizeof(path), PVP_PCI_DEVICES "/%s/device", bdf);
	if (pvp_read_file(path, d, sizeof(d)))
		return -EIO;
	snprintf(want, sizeof(want), "%s:%s", v, d);
	snprintf(got, sizeof(got), "0x%04x:0x%04x", cfg[0] | cfg[1] << 8, cfg[2] | cfg[3] << 8);
	return strcmp(want, got) ? -EINVAL : 0;
}

FIXTURE_SETUP(lifecycle)
{
	char path[PATH_MAX];
	int i;

	for (i = 0; i < NFDS; i++)
		self->fds[i] = -1;
	self->bdf = pvp_env("PVP_BDF");
	self->driver = pvp_env("PVP_DRIVER");
	self->module = pvp_env("PVP_MODULE");
	self->ko = pvp_env("PVP_KO");
	self->refcnt0 = -1;
	if (!self->bdf || !self->driver)
		SKIP(return, "PVP_BDF and PVP_DRIVER name the device and the driver to test");
	snprintf(path, sizeof(path), PVP_PCI_DEVICES "/%s", self->bdf);
	ASSERT_TRUE(pvp_exists(path)) TH_LOG("no PCI function %s", self->bdf);
	if (self->module && !pvp_module_loaded(self->module) && self->ko) {
		ASSERT_EQ(0, pvp_load_module(self->ko)) TH_LOG("cannot load %s", self->ko);
	}
	if (!pvp_driver_registered(self->driver))
		SKIP(return, "driver %s not registered", self->driver);
	ASSERT_EQ(0, pvp_bind(self->bdf, self->driver))
		TH_LOG("cannot bind %s to %s", self->bdf, self->driver);
	if (self->module) {
		self->refcnt0 = pvp_module_refcnt(self->module);
		ASSERT_LE(0, self->refcnt0) TH_LOG("no /sys/module/%s/refcnt", self->module);
	}
}

/* Leaves the device bound to the driver under test, and checks that nothing kept a reference. */
FIXTURE_TEARDOWN(lifecycle)
{
	int i;

	if (!self->bdf || !self->driver)
		return;
	for (i = 0; i < NFDS; i++) {
		if (self->fds[i] >= 0)
			close(self->fds[i]);
		self->fds[i] = -1;
	}
	if (self->module && !pvp_module_loaded(self->module) && self->ko) {
		EXPECT_EQ(0, pvp_load_module(self->ko));
	}
	if (!pvp_driver_registered(self->driver))
		return;
	EXPECT_EQ(0, pvp_bind(self->bdf, self->driver));
	if (self->module && self->refcnt0 >= 0) {
		EXPECT_EQ(self->refcnt0, pvp_module_refcnt(self->module))
			TH_LOG("%s refcnt did not return to its starting value", self->module);
	}
}

/* Unbind removes the cdev (sysfs and /dev), bind brings it back; repeated, through both paths. */
TEST_F(lifecycle, bind_unbind_rebind)
{
	char cdev[PATH_MAX], sysdir[PATH_MAX], bind[PATH_MAX], drv[256];
	int round, fd, err;

	snprintf(sysdir, sizeof(sysdir), PVP_PCI_DEVICES "/%s/vfio-dev", self->bdf);
	snprintf(bind, sizeof(bind), PVP_PCI_DRIVERS "/%s/bind", self->driver);

	for (round = 0; round < 3; round++) {
		ASSERT_EQ(0, pvp_cdev_check_node(self->bdf))
			TH_LOG("round %d: no vfio cdev for a bound device", round);
		ASSERT_EQ(0, pvp_cdev_path(self->bdf, cdev, sizeof(cdev)));

		/* Binding a bound device again through the driver's bind file: EBUSY. */
		EXPECT_EQ(-EBUSY, pvp_write_file(bind, self->bdf));
		ASSERT_EQ(0, pvp_driver_of(self->bdf, drv, sizeof(drv)));
		EXPECT_STREQ(self->driver, drv);

		ASSERT_EQ(0, pvp_unbind(self->bdf));
		EXPECT_EQ(-ENOENT, pvp_driver_of(self->bdf, drv, sizeof(drv)));
		EXPECT_FALSE(pvp_exists(sysdir)) TH_LOG("%s still there after unbind", sysdir);
		EXPECT_FALSE(pvp_exists(cdev)) TH_LOG("%s still there after unbind", cdev);
		fd = open(cdev, O_RDWR);
		err = fd < 0 ? errno : 0;
		EXPECT_EQ(-1, fd);
		EXPECT_EQ(ENOENT, err);
		if (fd >= 0)
			close(fd);

		/* Even rounds rebind through drivers_probe, odd ones through the bind file. */
		if (round % 2) {
			ASSERT_EQ(0, pvp_write_file(bind, self->bdf));
		} else {
			ASSERT_EQ(0, pvp_bind(self->bdf, self->driver));
		}
		ASSERT_EQ(0, pvp_driver_of(self->bdf, drv, sizeof(drv)));
		EXPECT_STREQ(self->driver, drv);
		EXPECT_EQ(0, pvp_cdev_check_node(self->bdf));
		EXPECT_EQ(refcnt_with(self, 0), refcnt(self));
	}
}

/* open + /dev/iommu + IOAS + BIND + ATTACH, use, DETACH, re-ATTACH, close. */
TEST_F(lifecycle, open_bind_attach)
{
	struct vfio_device_info *info;
	uint32_t ioas, devid = 0, hwpt = 0;
	int devfd, iommufd;
	size_t len;
	void *buf;

	devfd = track(self, pvp_cdev_open(self->bdf));
	ASSERT_LE(0, devfd) TH_LOG("open of the cdev: %s", strerror(-devfd));
	/* Opening the cdev pins the vfio core, not the driver: the driver module is pinned by BIND. */
	EXPECT_EQ(refcnt_with(self, 0), refcnt(self));

	iommufd = track(self, pvp_iommufd_open());
	ASSERT_LE(0, iommufd);
	ASSERT_EQ(0, pvp_ioas_alloc(iommufd, &ioas));
	ASSERT_EQ(0, pvp_bind_iommufd(devfd, iommufd, &devid));
	EXPECT_NE(0, devid);
	EXPECT_EQ(refcnt_with(self, 1), refcnt(self));

	ASSERT_EQ(0, pvp_attach_pt(devfd, ioas, &hwpt));
	/* Attaching to an IOAS returns the automatically created HWPT, a new object. */
	EXPECT_NE(0, hwpt);
	EXPECT_NE(ioas, hwpt);

	ASSERT_EQ(0, pvp_device_info(devfd, &buf, &len));
	info = buf;
	EXPECT_TRUE(info->flags & VFIO_DEVICE_FLAGS_PCI);
	EXPECT_LE(VFIO_PCI_NUM_REGIONS, info->num_regions);
	EXPECT_EQ(VFIO_PCI_NUM_IRQS, info->num_irqs);
	free(buf);
	EXPECT_EQ(0, check_ids(self->bdf, devfd));

	EXPECT_EQ(0, pvp_detach_pt(devfd));
	EXPECT_EQ(0, pvp_attach_pt(devfd, ioas, &hwpt));
	EXPECT_EQ(0, check_ids(self->bdf, devfd));

	untrack_close(self, devfd);
	EXPECT_EQ(refcnt_with(self, 0), refcnt(self));
	untrack_close(self, iommufd);
}

#define bind_token(fd, uuid) (struct vfio_device_bind_iommufd) {			\
	.argsz = sizeof(struct vfio_device_bind_iommufd),				\
	.flags = VFIO_DEVICE_BIND_FLAG_TOKEN,						\
	.iommufd = (fd),								\
	.token_uuid_ptr = (uintptr_t)(uuid),						\
}

/* Before BIND_IOMMUFD the fd grants nothing: every access is EINVAL, bad iommufds are refused. */
TEST_F(lifecycle, access_before_bind)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	uint64_t off = (uint64_t)VFIO_PCI_CONFIG_REGION_INDEX << 40;
	uint8_t uuid[16] = { 0x5e, 0x1f, 0x0c, 0x4a, 0x20, 0x00, 0x40, 0x00, 0x80, 0x00 };
	uint32_t devid;
	uint8_t b[4];
	void *map;
	int devfd, nullfd, iommufd;

	devfd = track(self, pvp_cdev_open(self->bdf));
	ASSERT_LE(0, devfd);

	EXPECT_EQ(-1, ioctl(devfd, VFIO_DEVICE_GET_INFO, &info));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, pread(devfd, b, sizeof(b), off));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-EINVAL, pvp_attach_pt(devfd, 1, NULL));
	map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, devfd, 0);
	EXPECT_EQ(MAP_FAILED, map);
	EXPECT_EQ(EINVAL, errno);
	if (map != MAP_FAILED)
		munmap(map, 4096);

	/* A negative fd is EINVAL, a closed one EBADF, a file that is not an iommufd EBADFD. */
	EXPECT_EQ(-EINVAL, pvp_bind_iommufd(devfd, -1, &devid));
	/* A VF token on a function that is neither a VF nor a PF with VFs: EINVAL. */
	iommufd = track(self, pvp_iommufd_open());
	ASSERT_LE(0, iommufd);
	EXPECT_EQ(-1, ioctl(devfd, VFIO_DEVICE_BIND_IOMMUFD, &bind_token(iommufd, uuid)));
	EXPECT_EQ(EINVAL, errno);
	untrack_close(self, iommufd);
	nullfd = open("/dev/null", O_RDWR);
	ASSERT_LE(0, nullfd);
	EXPECT_EQ(-EBADFD, pvp_bind_iommufd(devfd, nullfd, &devid));
	close(nullfd);
	EXPECT_EQ(-EBADF, pvp_bind_iommufd(devfd, nullfd, &devid));

	EXPECT_EQ(refcnt_with(self, 0), refcnt(self));
	untrack_close(self, devfd);
}

/*
 * A second open of the cdev succeeds, but the cdev path allows one bound user: the second fd
 * cannot BIND (EINVAL, with its own iommufd or the first one's) and can do nothing unbound.
 * Once the first user closes, the second fd binds.
 */
TEST_F(lifecycle, second_open)
{
	struct vfio_device_info info = { .argsz = sizeof(info) };
	struct pvp_dev d1;
	int fd2, iommufd2;
	uint32_t ioas2, devid;

	ASSERT_EQ(0, pvp_dev_open(self->bdf, &d1));
	track(self, d1.devfd);
	track(self, d1.iommufd);
	EXPECT_EQ(refcnt_with(self, 1), refcnt(self));

	fd2 = track(self, pvp_cdev_open(self->bdf));
	ASSERT_LE(0, fd2) TH_LOG("second open: %s", strerror(-fd2));
	iommufd2 = track(self, pvp_iommufd_open());
	ASSERT_LE(0, iommufd2);
	ASSERT_EQ(0, pvp_ioas_alloc(iommufd2, &ioas2));

	EXPECT_EQ(-1, ioctl(fd2, VFIO_DEVICE_GET_INFO, &info));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-EINVAL, pvp_bind_iommufd(fd2, iommufd2, &devid));
	EXPECT_EQ(-EINVAL, pvp_bind_iommufd(fd2, d1.iommufd, &devid));
	/* The refused binds took no reference. */
	EXPECT_EQ(refcnt_with(self, 1), refcnt(self));

	/* The first user is undisturbed. */
	EXPECT_EQ(0, ioctl(d1.devfd, VFIO_DEVICE_GET_INFO, &info));
	EXPECT_EQ(0, check_ids(self->bdf, d1.devfd));

	untrack_close(self, d1.devfd);
	untrack_close(self, d1.iommufd);
	EXPECT_EQ(refcnt_with(self, 0), refcnt(self));

	ASSERT_EQ(0, pvp_bind_iommufd(fd2, iommufd2, &devid));
	EXPECT_EQ(refcnt_with(self, 1), refcnt(self));
	ASSERT_EQ(0, pvp_attach_pt(fd2, ioas2, NULL));
	EXPECT_EQ(0, check_ids(self->bdf, fd2));
	untrack_close(self, fd2);
	untrack_close(self, iommufd2);
	EXPECT_EQ(refcnt_with(self, 0), refcnt(self));
}

/* BIND twice on one fd: EINVAL, and the fd keeps working. */
TEST_F(lifecycle, bind_twice)
{
	struct pvp_dev d;
	uint32_t devid;

	ASSERT_EQ(0, pvp_dev_open(self->bdf, &d));
	track(self, d.devfd);
	track(self, d.iommufd);
	EXPECT_EQ(-EINVAL, pvp_bind_iommufd(d.devfd, d.iommufd, &devid));
	EXPECT_EQ(refcnt_with(self, 1), refcnt(self));
	EXPECT_EQ(0, check_ids(self->bdf, d.devfd));
	untrack_close(self, d.devfd);
	untrack_close(self, d.iommufd);
	EXPECT_EQ(refcnt_with(self, 0), refcnt(self));
}

/* Open, use and close, five times: each close releases everything, each reopen works. */
TEST_F(lifecycle, reopen_after_close)
{
	struct pvp_dev d;
	int i;

	for (i = 0; i < 5; i++) {
		ASSERT_EQ(0, pvp_dev_open(self->bdf, &d)) TH_LOG("open #%d", i + 1);
		track(self, d.devfd);
		track(self, d.iommufd);
		EXPECT_EQ(refcnt_with(self, 1), refcnt(self));
		EXPECT_EQ(0, check_ids(self->bdf, d.devfd));
		untrack_close(self, d.devfd);
		untrack_close(self, d.iommufd);
		EXPECT_EQ(refcnt_with(self, 0), refcnt(self));
	}
}

struct blocker {
	const char *path;	/* file to write */
	const char *val;
	int err;		/* result of the write */
	volatile int done;
};

static void *blocker_write(void *arg)
{
	struct blocker *b = arg;

	b->err = pvp_write_file(b->path, b->val);
	__atomic_store_n(&b->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/*
 * Unbind while a user holds the device: the driver asks the user to release it through the
 * VFIO_PCI_REQ_IRQ_INDEX eventfd, the cdev disappears at once, and the unbind completes only
 * when the user closes the device.
 */
TEST_F_TIMEOUT(lifecycle, unbind_while_open, 90)
{
	char cdev[PATH_MAX], unbind[PATH_MAX], sysdir[PATH_MAX], drv[256];
	uint8_t irqs_buf[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
	struct vfio_irq_set *irqs = (struct vfio_irq_set *)irqs_buf;
	struct blocker b = { 0 };
	struct pollfd pfd;
	struct pvp_dev d;
	pthread_t thread;
	uint64_t count = 0;
	int32_t efd;

	ASSERT_EQ(0, pvp_cdev_path(self->bdf, cdev, sizeof(cdev)));
	snprintf(unbind, sizeof(unbind), PVP_PCI_DRIVERS "/%s/unbind", self->driver);
	snprintf(sysdir, sizeof(sysdir), PVP_PCI_DEVICES "/%s/vfio-dev", self->bdf);
	ASSERT_EQ(0, pvp_dev_open(self->bdf, &d));
	track(self, d.devfd);
	track(self, d.iommufd);

	efd = track(self, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	ASSERT_LE(0, efd);
	irqs->argsz = sizeof(irqs_buf);
	irqs->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
	irqs->index = VFIO_PCI_REQ_IRQ_INDEX;
	irqs->start = 0;
	irqs->count = 1;
	memcpy(irqs->data, &efd, sizeof(efd));
	ASSERT_EQ(0, ioctl(d.devfd, VFIO_DEVICE_SET_IRQS, irqs)) TH_LOG("REQ eventfd: %m");

	b.path = unbind;
	b.val = self->bdf;
	ASSERT_EQ(0, pthread_create(&thread, NULL, blocker_write, &b));

	pfd.fd = efd;
	pfd.events = POLLIN;
	EXPECT_EQ(1, poll(&pfd, 1, 30000)) TH_LOG("no device request within 30 s");
	EXPECT_EQ(sizeof(count), read(efd, &count, sizeof(count)));
	EXPECT_LE(1, count);

	/* The unbind waits for us; meanwhile nobody can open the device any more. */
	EXPECT_EQ(0, __atomic_load_n(&b.done, __ATOMIC_SEQ_CST));
	EXPECT_FALSE(pvp_exists(cdev)) TH_LOG("%s still there during unbind", cdev);
	EXPECT_FALSE(pvp_exists(sysdir));
	EXPECT_EQ(refcnt_with(self, 1), refcnt(self));
	/* The device is still usable until we let go. */
	EXPECT_EQ(0, check_ids(self->bdf, d.devfd));

	untrack_close(self, d.devfd);
	untrack_close(self, d.iommufd);
	ASSERT_EQ(0, pthread_join(thread, NULL));
	EXPECT_EQ(0, b.err) TH_LOG("unbind: %s", strerror(-b.err));
	EXPECT_EQ(-ENOENT, pvp_driver_of(self->bdf, drv, sizeof(drv)));
	EXPECT_EQ(refcnt_with(self, 0), refcnt(self));
	untrack_close(self, efd);
}

/* After a successful rmmod: the driver, the binding and the cdev are gone. */
static void expect_unloaded(struct __test_metadata *_metadata, FIXTURE_DATA(lifecycle) *self,
			    const char *cdev)
{
	char drv[256];

	EXPECT_FALSE(pvp_module_loaded(self->module));
	EXPECT_FALSE(pvp_driver_registered(self->driver));
	EXPECT_EQ(-ENOENT, pvp_driver_of(self->bdf, drv, sizeof(drv)));
	EXPECT_FALSE(pvp_exists(cdev)) TH_LOG("%s still there after rmmod", cdev);
}

/* Loading the module again binds the device at once: driver_override still names the driver. */
static void expect_reloaded(struct __test_metadata *_metadata, FIXTURE_DATA(lifecycle) *self)
{
	char drv[256];

	ASSERT_EQ(0, pvp_load_module(self->ko)) TH_LOG("cannot load %s", self->ko);
	EXPECT_TRUE(pvp_driver_registered(self->driver));
	ASSERT_EQ(0, pvp_driver_of(self->bdf, drv, sizeof(drv)));
	EXPECT_STREQ(self->driver, drv);
	EXPECT_EQ(0, pvp_cdev_check_node(self->bdf));
	EXPECT_EQ(refcnt_with(self, 0), refcnt(self));
}

/* rmmod with the device bound but unused: succeeds, unbinds it, removes the cdev. */
TEST_F(lifecycle, rmmod_while_bound)
{
	char cdev[PATH_MAX];

	if (!self->module || !self->ko)
		SKIP(return, NO_UNLOAD);
	ASSERT_EQ(0, pvp_cdev_path(self->bdf, cdev, sizeof(cdev)));
	ASSERT_EQ(0, pvp_delete_module(self->module, O_NONBLOCK));
	expect_unloaded(_metadata, self, cdev);
	expect_reloaded(_metadata, self);
}

/*
 * rmmod while a user has the device bound: the bind holds a reference on the driver module, so
 * delete_module(O_NONBLOCK) fails with EWOULDBLOCK (what rmmod reports as "in use") and leaves
 * the device working; once the user closes, rmmod succeeds.
 */
TEST_F(lifecycle, rmmod_while_open)
{
	char cdev[PATH_MAX], state[32];
	struct pvp_dev d;

	if (!self->module || !self->ko)
		SKIP(return, NO_UNLOAD);
	ASSERT_EQ(0, pvp_cdev_path(self->bdf, cdev, sizeof(cdev)));
	ASSERT_EQ(0, pvp_dev_open(self->bdf, &d));
	track(self, d.devfd);
	track(self, d.iommufd);
	EXPECT_EQ(refcnt_with(self, 1), refcnt(self));

	EXPECT_EQ(-EWOULDBLOCK, pvp_delete_module(self->module, O_NONBLOCK));
	ASSERT_EQ(0, pvp_module_state(self->module, state, sizeof(state)));
	EXPECT_STREQ("live", state);
	EXPECT_TRUE(pvp_driver_registered(self->driver));
	EXPECT_EQ(0, check_ids(self->bdf, d.devfd));
	EXPECT_EQ(refcnt_with(self, 1), refcnt(self));

	untrack_close(self, d.devfd);
	untrack_close(self, d.iommufd);
	EXPECT_EQ(refcnt_with(self, 0), refcnt(self));
	ASSERT_EQ(0, pvp_delete_module(self->module, O_NONBLOCK));
	expect_unloaded(_metadata, self, cdev);
	expect_reloaded(_metadata, self);
}

struct closer {
	const char *module;
	int fd;
	int saw_going;		/* the module was "going" while the fd was still open */
	volatile int rmmod_done;
	int rmmod_early;	/* rmmod returned before we closed */
};

static void *closer_run(void *arg)
{
	struct closer *c = arg;
	char state[32];
	int i;

	for (i = 0; i < 300; i++) {
		if (pvp_module_state(c->module, state, sizeof(state)) == 0 &&
		    !strcmp(state, "going")) {
			c->saw_going = 1;
			break;
		}
		usleep(100000);
	}
	usleep(500000);
	c->rmmod_early = __atomic_load_n(&c->rmmod_done, __ATOMIC_SEQ_CST);
	close(c->fd);
	return NULL;
}

/*
 * rmmod while a user has the cdev open but not bound: no module reference is held, so rmmod goes
 * ahead, and the driver's unbind waits until that user closes its fd.
 */
TEST_F_TIMEOUT(lifecycle, rmmod_waits_for_unbound_opener, 90)
{
	struct closer c = { 0 };
	char cdev[PATH_MAX];
	struct timespec t0;
	pthread_t thread;
	int err;

	if (!self->module || !self->ko)
		SKIP(return, NO_UNLOAD);
	ASSERT_EQ(0, pvp_cdev_path(self->bdf, cdev, sizeof(cdev)));
	c.module = self->module;
	c.fd = pvp_cdev_open(self->bdf);
	ASSERT_LE(0, c.fd);
	EXPECT_EQ(refcnt_with(self, 0), refcnt(self));

	ASSERT_EQ(0, pthread_create(&thread, NULL, closer_run, &c));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	err = pvp_delete_module(self->module, O_NONBLOCK);
	__atomic_store_n(&c.rmmod_done, 1, __ATOMIC_SEQ_CST);
	ASSERT_EQ(0, pthread_join(thread, NULL));
	EXPECT_EQ(0, err) TH_LOG("rmmod: %s", strerror(-err));
	EXPECT_TRUE(c.saw_going) TH_LOG("the module never showed initstate \"going\"");
	EXPECT_FALSE(c.rmmod_early) TH_LOG("rmmod returned while the cdev was still open");
	EXPECT_LE(400, ms_since(&t0));
	expect_unloaded(_metadata, self, cdev);
	expect_reloaded(_metadata, self);
}

TEST_HARNESS_MAIN
