// SPDX-License-Identifier: GPL-2.0
/*
 * VFIO migration v2 of persona-vfio-pci on two edu functions (PVP_BDF_A, PVP_BDF_B, both bound
 * to persona-vfio-pci): the feature and its flags, every arc from the seven states a user can
 * ask for to all eight (the ERROR row, resets, closes, refused streams, DMA holding and the
 * persona check are in persona_migration_fault_test), a save on A resumed on B with the shadowed
 * registers equal, in chunked reads and writes, with PRECOPY_INFO along the way. The Interrupt
 * Line (0x3c) is the persona's: a fresh open reads its reset value (0) on both functions, and a
 * value written on A reads back on B after the resume (the config record carries it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "pvp_util.h"

#define NSTATES 8
#define STREAM_MAX (64 * 1024)
#define PI_SZ sizeof(struct vfio_precopy_info)

static const char *const names[NSTATES] = {
	"ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY",
	"PRE_COPY_P2P",
};

/* Whether the kernel's state machine can go from @from to @to (both supported, not ERROR). */
static bool reachable(int from, int to)
{
	if (from == VFIO_DEVICE_STATE_ERROR || to == VFIO_DEVICE_STATE_ERROR)
		return false;
	if (from == VFIO_DEVICE_STATE_STOP_COPY &&
	    (to == VFIO_DEVICE_STATE_PRE_COPY || to == VFIO_DEVICE_STATE_PRE_COPY_P2P))
		return false;
	return true;
}

/* edu BAR0 through the device file: its region offset, UINT64_MAX on failure. */
static uint64_t bar0_off(struct __test_metadata *_metadata, int devfd)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = VFIO_PCI_BAR0_REGION_INDEX };

	if (ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &ri)) {
		TH_LOG("region info: %s", strerror(errno));
		return UINT64_MAX;
	}
	EXPECT_EQ(0, ri.flags & VFIO_REGION_INFO_FLAG_MMAP);
	return ri.offset;
}

static uint32_t rd(int devfd, uint64_t bar, uint32_t reg)
{
	uint32_t v = 0xdeadbeef;

	if (pread(devfd, &v, 4, bar + reg) != 4)
		return 0xdeadbeef;
	return v;
}

static int wr(int devfd, uint64_t bar, uint32_t reg, uint32_t v)
{
	return pwrite(devfd, &v, 4, bar + reg) == 4 ? 0 : -errno;
}

/* The Interrupt Line through the config region; 0x1ff when the read fails. */
static unsigned int irq_line(int devfd)
{
	uint64_t off = 0, size = 0;
	uint8_t v = 0;

	if (pvp_config_size(devfd, &off, &size) || pread(devfd, &v, 1, off + 0x3c) != 1)
		return 0x1ff;
	return v;
}

static int set_irq_line(int devfd, uint8_t v)
{
	uint64_t off = 0, size = 0;

	if (pvp_config_size(devfd, &off, &size))
		return -EIO;
	return pwrite(devfd, &v, 1, off + 0x3c) == 1 ? 0 : -errno;
}

FIXTURE(mig) {
	const char *bdf_a, *bdf_b;
	struct pvp_dev a, b;
};

FIXTURE_SETUP(mig)
{
	self->bdf_a = pvp_env("PVP_BDF_A");
	self->bdf_b = pvp_env("PVP_BDF_B");
	self->a.devfd = self->b.devfd = -1;
	if (!self->bdf_a || !self->bdf_b)
		SKIP(return, "PVP_BDF_A and PVP_BDF_B name two edu functions");
	ASSERT_EQ(0, pvp_dev_open(self->bdf_a, &self->a));
	ASSERT_EQ(0, pvp_dev_open(self->bdf_b, &self->b));
}

FIXTURE_TEARDOWN(mig)
{
	if (self->a.devfd >= 0)
		pvp_dev_close(&self->a);
	if (self->b.devfd >= 0)
		pvp_dev_close(&self->b);
}

TEST_F(mig, feature)
{
	uint64_t flags = 0, len = 0;
	uint32_t st = 0;

	ASSERT_EQ(0, pvp_mig_flags(self->a.devfd, &flags));
	EXPECT_EQ(VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY, flags);
	ASSERT_EQ(0, pvp_mig_get(self->a.devfd, &st));
	EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, st);
	ASSERT_EQ(0, pvp_mig_data_size(self->a.devfd, &len));
	/* header 120 + config record 16+1024 + edu record 16+64 + end 24 */
	EXPECT_EQ(120 + 16 + 1024 + 16 + 64 + 24, len);
}

/*
 * Every (from, to) pair with from != ERROR: reachable targets are reached, the others refused
 * with no change; leaving an empty RESUMING fails, in STOP.
 */
TEST_F(mig, arcs)
{
	int from, to;

	for (from = 1; from < NSTATES; from++) {
		for (to = 0; to < NSTATES; to++) {
			uint32_t st = 0;
			int r;

			r = pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_RUNNING, NULL);
			if (r == -EINVAL && !pvp_mig_get(self->a.devfd, &st) &&
			    st == VFIO_DEVICE_STATE_STOP)
				/* Left an empty RESUMING: failed once, in STOP (see below). */
				r = pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_RUNNING, NULL);
			ASSERT_EQ(0, r);
			ASSERT_EQ(0, pvp_mig_set(self->a.devfd, from, NULL))
				TH_LOG("RUNNING -> %s", names[from]);
			r = pvp_mig_set(self->a.devfd, to, NULL);
			ASSERT_EQ(0, pvp_mig_get(self->a.devfd, &st));
			if (from == VFIO_DEVICE_STATE_RESUMING && reachable(from, to) &&
			    to != from) {
				/*
				 * Nothing was written to the resuming fd: leaving RESUMING fails
				 * (incomplete data) and the device is left in STOP, unchanged.
				 */
				EXPECT_EQ(-EINVAL, r) TH_LOG("%s -> %s", names[from], names[to]);
				EXPECT_EQ(VFIO_DEVICE_STATE_STOP, st)
					TH_LOG("%s -> %s", names[from], names[to]);
			} else if (reachable(from, to)) {
				EXPECT_EQ(0, r) TH_LOG("%s -> %s: %s", names[from], names[to],
						       strerror(-r));
				EXPECT_EQ(to, st) TH_LOG("%s -> %s", names[from], names[to]);
			} else {
				EXPECT_EQ(-EINVAL, r) TH_LOG("%s -> %s", names[from], names[to]);
				EXPECT_EQ(from, st) TH_LOG("%s -> %s", names[from], names[to]);
			}
		}
	}
	ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
}

TEST_F(mig, save_resume)
{
	static uint8_t stream[STREAM_MAX];
	static const size_t chunks[] = { 1, 7, 64, 4096, 1 << 20 };
	uint64_t ba = bar0_off(_metadata, self->a.devfd);
	uint64_t bb = bar0_off(_metadata, self->b.devfd);
	uint64_t initial = 0, dirty = 0;
	unsigned int c;

	ASSERT_NE(UINT64_MAX, ba);
	ASSERT_NE(UINT64_MAX, bb);
	/* Fresh opens: the persona's reset value on both, whatever the hosts' routing. */
	EXPECT_EQ(0, irq_line(self->a.devfd));
	EXPECT_EQ(0, irq_line(self->b.devfd));
	for (c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		uint32_t live = 0x12345600 + c, fact = 5 + c, st = 0;
		size_t len = 0;
		ssize_t n;
		int fd = -1, rfd = -1;
		uint32_t f = 1, i;

		for (i = 2; i <= fact; i++)
			f *= i;
		ASSERT_EQ(0, wr(self->a.devfd, ba, 0x04, live));
		ASSERT_EQ(0, wr(self->a.devfd, ba, 0x08, fact));
		ASSERT_EQ(0, wr(self->a.devfd, ba, 0x20, 0x80));
		ASSERT_EQ(0, wr(self->a.devfd, ba, 0x80, 0x1000 + c));
		ASSERT_EQ(0, wr(self->a.devfd, ba, 0x88, 0x40000));
		ASSERT_EQ(0, wr(self->a.devfd, ba, 0x90, 8 + c));
		ASSERT_EQ(0, set_irq_line(self->a.devfd, 0x40 + c));
		usleep(10000);

		/* Source: PRE_COPY (header only, then ENOMSG), STOP_COPY (the rest, to EOF). */
		ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_PRE_COPY, &fd));
		ASSERT_LE(0, fd);
		ASSERT_EQ(0, pvp_precopy_info(fd, PI_SZ, &initial, &dirty));
		EXPECT_EQ(120, initial);
		EXPECT_EQ(0, dirty);
		n = pvp_read_all(fd, stream, STREAM_MAX, chunks[c]);
		EXPECT_EQ(-ENOMSG, n);
		ASSERT_EQ(0, pvp_precopy_info(fd, PI_SZ, &initial, &dirty));
		EXPECT_EQ(0, initial);
		len = 120;
		ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_STOP_COPY, NULL));
		EXPECT_EQ(-EINVAL, pvp_precopy_info(fd, PI_SZ, &initial, &dirty));
		n = pvp_read_all(fd, stream + len, STREAM_MAX - len, chunks[c]);
		ASSERT_LT(0, n);
		len += n;
		EXPECT_EQ(120 + 16 + 1024 + 16 + 64 + 24, len);
		EXPECT_EQ(0, memcmp(stream, "PVFIOMIG", 8));
		ASSERT_EQ(0, pvp_mig_set(self->a.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
		/* The session is over: its fd fails. */
		EXPECT_EQ(-1, read(fd, stream + len, 1));
		close(fd);

		/* Destination: RESUMING, the stream in the same chunks, RUNNING. */
		ASSERT_EQ(0, wr(self->b.devfd, bb, 0x04, 0));
		ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RESUMING, &rfd));
		ASSERT_LE(0, rfd);
		ASSERT_EQ(0, pvp_write_all(rfd, stream, len, chunks[c]));
		ASSERT_EQ(0, pvp_mig_set(self->b.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
		ASSERT_EQ(0, pvp_mig_get(self->b.devfd, &st));
		EXPECT_EQ(VFIO_DEVICE_STATE_RUNNING, st);
		close(rfd);

		EXPECT_EQ(~live, rd(self->b.devfd, bb, 0x04));
		EXPECT_EQ(f, rd(self->b.devfd, bb, 0x08));
		EXPECT_EQ(rd(self->a.devfd, ba, 0x08), rd(self->b.devfd, bb, 0x08));
		EXPECT_EQ(0x80, rd(self->b.devfd, bb, 0x20) & 0x81);
		EXPECT_EQ(rd(self->a.devfd, ba, 0x24), rd(self->b.devfd, bb, 0x24));
		EXPECT_EQ(0x1000 + c, rd(self->b.devfd, bb, 0x80));
		EXPECT_EQ(0x40000, rd(self->b.devfd, bb, 0x88));
		EXPECT_EQ(8 + c, rd(self->b.devfd, bb, 0x90));
		EXPECT_EQ(0x40 + c, irq_line(self->b.devfd));
	}
}

/* A function without a backend (PVP_BDF_NOMIG) offers no migration: QEMU then blocks it. */
TEST(no_backend)
{
	const char *bdf = pvp_env("PVP_BDF_NOMIG");
	struct pvp_dev d;
	uint64_t flags;

	if (!bdf)
		SKIP(return, "PVP_BDF_NOMIG names no function");
	ASSERT_EQ(0, pvp_dev_open(bdf, &d));
	EXPECT_EQ(-ENOTTY, pvp_mig_flags(d.devfd, &flags));
	pvp_dev_close(&d);
}

TEST_HARNESS_MAIN
