// SPDX-License-Identifier: GPL-2.0
/*
 * Device dirty page logging (VFIO_DEVICE_FEATURE_DMA_LOGGING_*) of persona-vfio-pci on an edu
 * function (PVP_BDF_A, bound to persona-vfio-pci): the edu's device-to-RAM DMAs into IOAS-mapped
 * buffers, checked in RAM, must be exactly the bits a report sets, page by page; RAM-to-device
 * DMAs, DMAs outside the tracked ranges and DMAs issued while logging is off are not logged;
 * reads clear; a DMA still running is reported until a report sees it finished; the uAPI errors
 * (second start, unknown ranges, page sizes, report after stop or close); logging across the
 * migration states, with a DMA start held in PRE_COPY_P2P logged when it is issued. A function
 * without a migration backend (PVP_BDF_NOLOG) offers no logging.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "edu.h"
#include "pvp_util.h"

#define PG 4096ULL

/* Three IOAS-mapped buffers: A and B are logged, C is mapped but never in a logged range. */
#define IOVA_A 0x100000ULL
#define PAGES_A 64
#define IOVA_B 0x400000ULL
#define PAGES_B 16
#define IOVA_C 0x800000ULL
#define PAGES_C 16

/* The pattern the edu's buffer holds once filled (filled from a page of A). */
static uint8_t pat(size_t i)
{
	return (uint8_t)(i * 7 + 1);
}

static int feature(int devfd, uint32_t flags, void *data, size_t len)
{
	uint64_t buf[(sizeof(struct vfio_device_feature) + 64) / 8] = {};
	struct vfio_device_feature *f = (void *)buf;

	if (len > 64)
		return -EINVAL;
	f->argsz = sizeof(*f) + len;
	f->flags = flags;
	if (len)
		memcpy(f->data, data, len);
	if (ioctl(devfd, VFIO_DEVICE_FEATURE, f))
		return -errno;
	if (len)
		memcpy(data, f->data, len);
	return 0;
}

static int log_start(int devfd, uint64_t page_size,
		     const struct vfio_device_feature_dma_logging_range *r, uint32_t n,
		     uint64_t *out_page_size)
{
	struct vfio_device_feature_dma_logging_control c = {
		.page_size = page_size,
		.num_ranges = n,
		.ranges = (uintptr_t)r,
	};
	int ret = feature(devfd, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
			  &c, sizeof(c));

	if (!ret && out_page_size)
		*out_page_size = c.page_size;
	return ret;
}

/*
 * Starts logging A and B at 4 KiB pages, and the page at the IOVA equal to the edu's buffer
 * address: a RAM-to-device DMA names it as its destination, and must not log it.
 */
static int log_start_ab(int devfd)
{
	struct vfio_device_feature_dma_logging_range r[3] = {
		{ .iova = EDU_BUF, .length = PG },
		{ .iova = IOVA_A, .length = PAGES_A * PG },
		{ .iova = IOVA_B, .length = PAGES_B * PG },
	};
	uint64_t ps = 0;
	int ret = log_start(devfd, PG, r, 3, &ps);

	if (!ret && ps != PG)
		return -EPROTO;
	return ret;
}

static int log_stop(int devfd)
{
	return feature(devfd, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
		       NULL, 0);
}

/* A report into @bm (zeroed first: a report only sets bits). */
static int log_report(int devfd, uint64_t iova, uint64_t len, uint64_t page_size, uint64_t *bm,
		      size_t words)
{
	struct vfio_device_feature_dma_logging_report r = {
		.iova = iova,
		.length = len,
		.page_size = page_size,
		.bitmap = (uintptr_t)bm,
	};

	memset(bm, 0, words * 8);
	return feature(devfd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
		       &r, sizeof(r));
}

/* The page numbers set in a bitmap of @n bits, as a printable list, for messages. */
static const char *bits(const uint64_t *bm, unsigned int n)
{
	static char s[512];
	size_t at = 0;
	unsigned int i;

	s[0] = 0;
	for (i = 0; i < n && at < sizeof(s) - 8; i++)
		if (bm[i / 64] >> (i % 64) & 1)
			at += snprintf(s + at, sizeof(s) - at, "%u ", i);
	return s;
}

static int mig_set(int devfd, uint32_t state, int *data_fd)
{
	struct vfio_device_feature_mig_state m = { .device_state = state, .data_fd = -1 };
	int ret = feature(devfd, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
			  &m, sizeof(m));

	if (ret)
		return ret;
	if (data_fd)
		*data_fd = m.data_fd;
	else if (m.data_fd >= 0)
		close(m.data_fd);
	return 0;
}

FIXTURE(dirty) {
	const char *bdf;
	struct pvp_dev d;
	uint64_t bar;
	uint8_t *a, *b, *c;
};

static uint64_t bar0(int devfd)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri), .index = VFIO_PCI_BAR0_REGION_INDEX };

	return ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &ri) ? UINT64_MAX : ri.offset;
}

static uint32_t rd32(FIXTURE_DATA(dirty) *self, uint32_t reg)
{
	uint32_t v = 0xffffffff;

	if (pread(self->d.devfd, &v, 4, self->bar + reg) != 4)
		return 0xffffffff;
	return v;
}

static int wr64(FIXTURE_DATA(dirty) *self, uint32_t reg, uint64_t v)
{
	return pwrite(self->d.devfd, &v, 8, self->bar + reg) == 8 ? 0 : -errno;
}

static int wr32(FIXTURE_DATA(dirty) *self, uint32_t reg, uint32_t v)
{
	return pwrite(self->d.devfd, &v, 4, self->bar + reg) == 4 ? 0 : -errno;
}

/* Waits (3 s at most) until no DMA runs; 0 or -ETIMEDOUT. */
static int dma_wait(FIXTURE_DATA(dirty) *self)
{
	int i;

	for (i = 0; i < 600; i++) {
		if (!(rd32(self, EDU_DMA_CMD) & EDU_DMA_START))
			return 0;
		usleep(5000);
	}
	return -ETIMEDOUT;
}

/* Programs a DMA and starts it with @cmd; does not wait. */
static int dma_issue(FIXTURE_DATA(dirty) *self, uint64_t src, uint64_t dst, uint64_t cnt,
		     uint32_t cmd)
{
	int ret = dma_wait(self);

	if (!ret)
		ret = wr64(self, EDU_DMA_SRC, src);
	if (!ret)
		ret = wr64(self, EDU_DMA_DST, dst);
	if (!ret)
		ret = wr64(self, EDU_DMA_CNT, cnt);
	if (!ret)
		ret = wr32(self, EDU_DMA_CMD, cmd);
	return ret;
}

/* A whole DMA: issue, then wait for it. */
static int dma(FIXTURE_DATA(dirty) *self, uint64_t src, uint64_t dst, uint64_t cnt, uint32_t cmd)
{
	int ret = dma_issue(self, src, dst, cnt, cmd);

	return ret ? ret : dma_wait(self);
}

/* Device-to-RAM: @cnt bytes of the edu's buffer from offset @off to IOVA @dst. */
static int dma_to_ram(FIXTURE_DATA(dirty) *self, uint64_t off, uint64_t dst, uint64_t cnt)
{
	return dma(self, EDU_BUF + off, dst, cnt, EDU_DMA_START | EDU_DMA_TO_RAM);
}

/* The bytes at @va equal the edu buffer's pattern from @off on, for @cnt bytes. */
static bool has_pattern(const uint8_t *va, uint64_t off, uint64_t cnt)
{
	uint64_t i;

	for (i = 0; i < cnt; i++)
		if (va[i] != pat(off + i))
			return false;
	return true;
}

static bool all_zero(const uint8_t *va, uint64_t len)
{
	uint64_t i;

	for (i = 0; i < len; i++)
		if (va[i])
			return false;
	return true;
}

FIXTURE_SETUP(dirty)
{
	uint64_t cfg = 0, cfgsz = 0;
	uint16_t cmd = 0;
	size_t i;

	self->d.devfd = -1;
	self->a = self->b = self->c = MAP_FAILED;
	self->bdf = pvp_env("PVP_BDF_A");
	if (!self->bdf)
		SKIP(return, "PVP_BDF_A names no edu function");
	ASSERT_EQ(0, pvp_dev_open(self->bdf, &self->d));
	self->bar = bar0(self->d.devfd);
	ASSERT_NE(UINT64_MAX, self->bar);

	/* Memory decoding and bus mastering on, or edu's DMA goes nowhere. */
	ASSERT_EQ(0, pvp_config_size(self->d.devfd, &cfg, &cfgsz));
	ASSERT_EQ(2, pread(self->d.devfd, &cmd, 2, cfg + 4));
	cmd |= 0x6;
	ASSERT_EQ(2, pwrite(self->d.devfd, &cmd, 2, cfg + 4));

	self->a = mmap(NULL, PAGES_A * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	self->b = mmap(NULL, PAGES_B * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	self->c = mmap(NULL, PAGES_C * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	ASSERT_NE(MAP_FAILED, self->a);
	ASSERT_NE(MAP_FAILED, self->b);
	ASSERT_NE(MAP_FAILED, self->c);
	memset(self->a, 0, PAGES_A * PG);
	memset(self->b, 0, PAGES_B * PG);
	memset(self->c, 0, PAGES_C * PG);
	ASSERT_EQ(0, pvp_ioas_map(self->d.iommufd, self->d.ioas_id, self->a, PAGES_A * PG, IOVA_A));
	ASSERT_EQ(0, pvp_ioas_map(self->d.iommufd, self->d.ioas_id, self->b, PAGES_B * PG, IOVA_B));
	ASSERT_EQ(0, pvp_ioas_map(self->d.iommufd, self->d.ioas_id, self->c, PAGES_C * PG, IOVA_C));

	/* Fill the edu's buffer from the last page of A (a RAM-to-device DMA), then clear it. */
	for (i = 0; i < PG; i++)
		self->a[(PAGES_A - 1) * PG + i] = pat(i);
	ASSERT_EQ(0, dma(self, IOVA_A + (PAGES_A - 1) * PG, EDU_BUF, PG, EDU_DMA_START));
	memset(self->a + (PAGES_A - 1) * PG, 0, PG);
}

FIXTURE_TEARDOWN(dirty)
{
	if (self->d.devfd >= 0) {
		log_stop(self->d.devfd);
		pvp_dev_close(&self->d);
	}
	if (self->a != MAP_FAILED)
		munmap(self->a, PAGES_A * PG);
	if (self->b != MAP_FAILED)
		munmap(self->b, PAGES_B * PG);
	if (self->c != MAP_FAILED)
		munmap(self->c, PAGES_C * PG);
}

TEST_F(dirty, feature_probe)
{
	int fd = self->d.devfd;

	EXPECT_EQ(0, feature(fd, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
				 VFIO_DEVICE_FEATURE_DMA_LOGGING_START, NULL, 0));
	EXPECT_EQ(0, feature(fd, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
				 VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, NULL, 0));
	EXPECT_EQ(0, feature(fd, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET |
				 VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, NULL, 0));
	/* START is SET-only and REPORT GET-only. */
	EXPECT_EQ(-EINVAL, feature(fd, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET |
				       VFIO_DEVICE_FEATURE_DMA_LOGGING_START, NULL, 0));
	EXPECT_EQ(-EINVAL, feature(fd, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
				       VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, NULL, 0));
}

/*
 * DMAs to chosen pages of A and B (whole pages, one byte, one across a page boundary), RAM-to-
 * device DMAs and a DMA into C: the RAM changed exactly there, and the reports set exactly the
 * pages the device-to-RAM DMAs wrote into A and B; a second report is clear.
 */
TEST_F(dirty, dma_pages)
{
	static const unsigned int whole_a[] = { 3, 7, 40 };
	uint64_t bm[1], want_a = 0, want_b = 0;
	unsigned int i;

	ASSERT_EQ(0, log_start_ab(self->d.devfd));

	/* RAM-to-device reads A and B: nothing is logged. */
	ASSERT_EQ(0, dma(self, IOVA_A + 5 * PG, EDU_BUF + PG / 2, 16, EDU_DMA_START));
	ASSERT_EQ(0, dma(self, IOVA_B, EDU_BUF + PG / 2, 16, EDU_DMA_START));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	EXPECT_EQ(0, bm[0]) TH_LOG("RAM-to-device logged: %s", bits(bm, PAGES_A));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_B, PAGES_B * PG, PG, bm, 1));
	EXPECT_EQ(0, bm[0]) TH_LOG("RAM-to-device logged: %s", bits(bm, PAGES_B));
	ASSERT_EQ(0, log_report(self->d.devfd, EDU_BUF, PG, PG, bm, 1));
	EXPECT_EQ(0, bm[0]) TH_LOG("RAM-to-device logged its destination");
	/* The buffer's first half is intact for the DMAs below. */

	for (i = 0; i < sizeof(whole_a) / sizeof(whole_a[0]); i++) {
		ASSERT_EQ(0, dma_to_ram(self, 0, IOVA_A + whole_a[i] * PG, PG / 2));
		want_a |= 1ULL << whole_a[i];
	}
	/* One byte in the middle of page 20. */
	ASSERT_EQ(0, dma_to_ram(self, 9, IOVA_A + 20 * PG + 100, 1));
	want_a |= 1ULL << 20;
	/* 32 bytes across the boundary of pages 30 and 31. */
	ASSERT_EQ(0, dma_to_ram(self, 0, IOVA_A + 31 * PG - 16, 32));
	want_a |= 3ULL << 30;
	/* Page 5 of B, and page 2 of C (mapped, not logged). */
	ASSERT_EQ(0, dma_to_ram(self, 0, IOVA_B + 5 * PG, 64));
	want_b |= 1ULL << 5;
	ASSERT_EQ(0, dma_to_ram(self, 0, IOVA_C + 2 * PG, 64));

	/* The RAM really changed, and only there. */
	for (i = 0; i < sizeof(whole_a) / sizeof(whole_a[0]); i++) {
		uint8_t *p = self->a + whole_a[i] * PG;

		EXPECT_TRUE(has_pattern(p, 0, PG / 2)) TH_LOG("page %u of A", whole_a[i]);
		EXPECT_TRUE(all_zero(p + PG / 2, PG / 2)) TH_LOG("page %u of A", whole_a[i]);
	}
	EXPECT_EQ(pat(9), self->a[20 * PG + 100]);
	EXPECT_TRUE(has_pattern(self->a + 31 * PG - 16, 0, 32));
	EXPECT_TRUE(has_pattern(self->b + 5 * PG, 0, 64));
	EXPECT_TRUE(has_pattern(self->c + 2 * PG, 0, 64));
	for (i = 0; i < PAGES_A; i++) {
		uint64_t nz = !all_zero(self->a + i * PG, PG);

		EXPECT_EQ((want_a >> i) & 1, nz) TH_LOG("RAM of page %u of A", i);
	}

	/* Every bit, page by page. */
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	for (i = 0; i < PAGES_A; i++)
		EXPECT_EQ((want_a >> i) & 1, (bm[0] >> i) & 1)
			TH_LOG("page %u of A: reported %s", i, bits(bm, PAGES_A));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_B, PAGES_B * PG, PG, bm, 1));
	for (i = 0; i < PAGES_B; i++)
		EXPECT_EQ((want_b >> i) & 1, (bm[0] >> i) & 1)
			TH_LOG("page %u of B: reported %s", i, bits(bm, PAGES_B));

	/* Read clears. */
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	EXPECT_EQ(0, bm[0]) TH_LOG("second report of A: %s", bits(bm, PAGES_A));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_B, PAGES_B * PG, PG, bm, 1));
	EXPECT_EQ(0, bm[0]) TH_LOG("second report of B: %s", bits(bm, PAGES_B));
}

/* Reports at another page size than the log's, and of part of a range. */
TEST_F(dirty, report_granularity)
{
	uint64_t bm[1];

	ASSERT_EQ(0, log_start_ab(self->d.devfd));
	ASSERT_EQ(0, dma_to_ram(self, 0, IOVA_A + 5 * PG, 8));
	ASSERT_EQ(0, dma_to_ram(self, 0, IOVA_A + 12 * PG, 8));
	/* 16 KiB bits: pages 5 and 12 are bits 1 and 3. */
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, 16 * PG, 4 * PG, bm, 1));
	EXPECT_EQ((1ULL << 1) | (1ULL << 3), bm[0]);
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, 16 * PG, PG, bm, 1));
	EXPECT_EQ(0, bm[0]);

	/* A report of pages 0-9 leaves page 12 for a later one. */
	ASSERT_EQ(0, dma_to_ram(self, 0, IOVA_A + 5 * PG, 8));
	ASSERT_EQ(0, dma_to_ram(self, 0, IOVA_A + 12 * PG, 8));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, 10 * PG, PG, bm, 1));
	EXPECT_EQ(1ULL << 5, bm[0]);
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A + 10 * PG, 10 * PG, PG, bm, 1));
	EXPECT_EQ(1ULL << 2, bm[0]);
}

TEST_F(dirty, double_start)
{
	ASSERT_EQ(0, log_start_ab(self->d.devfd));
	EXPECT_EQ(-EINVAL, log_start_ab(self->d.devfd));
	ASSERT_EQ(0, log_stop(self->d.devfd));
	EXPECT_EQ(0, log_start_ab(self->d.devfd));
}

TEST_F(dirty, unknown_ranges)
{
	uint64_t bm[4];

	ASSERT_EQ(0, log_start_ab(self->d.devfd));
	/* C, and A's last page with the page after it, and the gap between A and B. */
	EXPECT_EQ(-EINVAL, log_report(self->d.devfd, IOVA_C, PG, PG, bm, 1));
	EXPECT_EQ(-EINVAL, log_report(self->d.devfd, IOVA_A + (PAGES_A - 1) * PG, 2 * PG, PG, bm,
				      1));
	EXPECT_EQ(-EINVAL, log_report(self->d.devfd, IOVA_A, IOVA_B + PG - IOVA_A, PG * 64, bm,
				      4));
	EXPECT_EQ(-EINVAL, log_report(self->d.devfd, IOVA_A, 0, PG, bm, 1));
	/* Inside: fine. */
	EXPECT_EQ(0, log_report(self->d.devfd, IOVA_A + PG, PG, PG, bm, 1));
}

TEST_F(dirty, bad_page_sizes)
{
	struct vfio_device_feature_dma_logging_range r = { .iova = 0, .length = 1ULL << 31 };
	static const uint64_t bad[] = { 0, 512, 2048, 4095, 12288, 1ULL << 31 };
	uint64_t bm[1], ps = 0;
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_EQ(-EINVAL, log_start(self->d.devfd, bad[i], &r, 1, NULL))
			TH_LOG("page size %llu", (unsigned long long)bad[i]);
	/* The largest supported, 1 GiB, is used as given. */
	r.length = 1ULL << 30;
	ASSERT_EQ(0, log_start(self->d.devfd, 1ULL << 30, &r, 1, &ps));
	EXPECT_EQ(1ULL << 30, ps);
	ASSERT_EQ(0, log_stop(self->d.devfd));
	/* Report page sizes: VFIO refuses these before the driver sees them. */
	ASSERT_EQ(0, log_start_ab(self->d.devfd));
	EXPECT_EQ(-EINVAL, log_report(self->d.devfd, IOVA_A, PG, 2048, bm, 1));
	EXPECT_EQ(-EINVAL, log_report(self->d.devfd, IOVA_A, 3 * PG, 3 * PG, bm, 1));
}

TEST_F(dirty, stop_then_report)
{
	uint64_t bm[1];

	EXPECT_EQ(-EINVAL, log_report(self->d.devfd, IOVA_A, PG, PG, bm, 1));
	ASSERT_EQ(0, log_start_ab(self->d.devfd));
	ASSERT_EQ(0, log_stop(self->d.devfd));
	EXPECT_EQ(-EINVAL, log_report(self->d.devfd, IOVA_A, PG, PG, bm, 1));
	/* Stopping a stopped log is not an error (mlx5 and pds agree). */
	EXPECT_EQ(0, log_stop(self->d.devfd));
}

/* DMAs while logging is off are not in the log of a later start. */
TEST_F(dirty, off_not_logged)
{
	uint64_t bm[1];

	ASSERT_EQ(0, log_start_ab(self->d.devfd));
	ASSERT_EQ(0, log_stop(self->d.devfd));
	ASSERT_EQ(0, dma_to_ram(self, 0, IOVA_A + 9 * PG, 8));
	EXPECT_TRUE(has_pattern(self->a + 9 * PG, 0, 8));
	ASSERT_EQ(0, log_start_ab(self->d.devfd));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	EXPECT_EQ(0, bm[0]) TH_LOG("reported %s", bits(bm, PAGES_A));
	/* And logging works after the restart. */
	ASSERT_EQ(0, dma_to_ram(self, 0, IOVA_A + 9 * PG, 8));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	EXPECT_EQ(1ULL << 9, bm[0]) TH_LOG("reported %s", bits(bm, PAGES_A));
}

/*
 * edu's DMA takes 100 ms: a report while it runs includes it, and so does the first report
 * after it ended (it may have written after the previous report cleared it).
 */
TEST_F(dirty, in_flight)
{
	uint64_t bm[1];
	bool was_busy;

	ASSERT_EQ(0, log_start_ab(self->d.devfd));
	ASSERT_EQ(0, dma_issue(self, EDU_BUF, IOVA_A + 17 * PG, 8,
			       EDU_DMA_START | EDU_DMA_TO_RAM));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	EXPECT_EQ(1ULL << 17, bm[0]) TH_LOG("reported %s", bits(bm, PAGES_A));
	/* Still running after the report returned: the report saw it running. */
	was_busy = rd32(self, EDU_DMA_CMD) & EDU_DMA_START;
	ASSERT_EQ(0, dma_wait(self));
	EXPECT_TRUE(has_pattern(self->a + 17 * PG, 0, 8));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	if (was_busy) {
		EXPECT_EQ(1ULL << 17, bm[0]) TH_LOG("after the end: %s", bits(bm, PAGES_A));
	} else {
		TH_LOG("the DMA ended before the first report returned");
	}
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	EXPECT_EQ(0, bm[0]) TH_LOG("third report: %s", bits(bm, PAGES_A));
}

/* A DMA already running when logging starts is logged. */
TEST_F(dirty, running_at_start)
{
	uint64_t bm[1];
	bool was_busy;

	ASSERT_EQ(0, dma_issue(self, EDU_BUF, IOVA_A + 33 * PG, 8,
			       EDU_DMA_START | EDU_DMA_TO_RAM));
	ASSERT_EQ(0, log_start_ab(self->d.devfd));
	/* Still running after the start returned: the start saw it running. */
	was_busy = rd32(self, EDU_DMA_CMD) & EDU_DMA_START;
	ASSERT_EQ(0, dma_wait(self));
	EXPECT_TRUE(has_pattern(self->a + 33 * PG, 0, 8));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	if (was_busy) {
		EXPECT_EQ(1ULL << 33, bm[0]) TH_LOG("reported %s", bits(bm, PAGES_A));
	} else if (bm[0] != 1ULL << 33) {
		EXPECT_EQ(0, bm[0]) TH_LOG("reported %s", bits(bm, PAGES_A));
	}
}

/* A write of 16 bytes at 0x90 sets the count and starts the DMA at 0x98: trapped and logged. */
TEST_F(dirty, wide_write)
{
	uint64_t regs[2] = { 8, EDU_DMA_START | EDU_DMA_TO_RAM }, bm[1];

	ASSERT_EQ(0, log_start_ab(self->d.devfd));
	ASSERT_EQ(0, dma_wait(self));
	ASSERT_EQ(0, wr64(self, EDU_DMA_SRC, EDU_BUF));
	ASSERT_EQ(0, wr64(self, EDU_DMA_DST, IOVA_A + 44 * PG));
	ASSERT_EQ(16, pwrite(self->d.devfd, regs, 16, self->bar + EDU_DMA_CNT));
	ASSERT_EQ(0, dma_wait(self));
	EXPECT_TRUE(has_pattern(self->a + 44 * PG, 0, 8));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	EXPECT_EQ(1ULL << 44, bm[0]) TH_LOG("reported %s", bits(bm, PAGES_A));
}

/* An ioeventfd would write BAR0 past the trap: refused. */
TEST_F(dirty, ioeventfd_refused)
{
	struct vfio_device_ioeventfd io = {
		.argsz = sizeof(io),
		.flags = VFIO_DEVICE_IOEVENTFD_32,
		.offset = self->bar + EDU_DMA_CMD,
		.data = EDU_DMA_START | EDU_DMA_TO_RAM,
	};
	int efd = eventfd(0, 0);

	ASSERT_LE(0, efd);
	io.fd = efd;
	EXPECT_EQ(-1, ioctl(self->d.devfd, VFIO_DEVICE_IOEVENTFD, &io));
	EXPECT_EQ(EOPNOTSUPP, errno);
	close(efd);
}

/*
 * Logging across migration states: in PRE_COPY DMAs are logged; a start written in PRE_COPY_P2P
 * is held (RAM untouched, nothing logged) and logged when PRE_COPY issues it; reports work in
 * STOP_COPY and logging goes on back in RUNNING.
 */
TEST_F(dirty, migration_states)
{
	uint64_t bm[1];
	int fd = -1;

	ASSERT_EQ(0, log_start_ab(self->d.devfd));
	ASSERT_EQ(0, mig_set(self->d.devfd, VFIO_DEVICE_STATE_PRE_COPY, &fd));
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, dma_to_ram(self, 0, IOVA_A + 1 * PG, 8));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	EXPECT_EQ(1ULL << 1, bm[0]) TH_LOG("PRE_COPY: %s", bits(bm, PAGES_A));

	ASSERT_EQ(0, mig_set(self->d.devfd, VFIO_DEVICE_STATE_PRE_COPY_P2P, NULL));
	ASSERT_EQ(0, wr64(self, EDU_DMA_SRC, EDU_BUF));
	ASSERT_EQ(0, wr64(self, EDU_DMA_DST, IOVA_A + 2 * PG));
	ASSERT_EQ(0, wr64(self, EDU_DMA_CNT, 8));
	ASSERT_EQ(0, wr32(self, EDU_DMA_CMD, EDU_DMA_START | EDU_DMA_TO_RAM));
	usleep(300000);
	EXPECT_TRUE(all_zero(self->a + 2 * PG, PG));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	EXPECT_EQ(0, bm[0]) TH_LOG("PRE_COPY_P2P, start held: %s", bits(bm, PAGES_A));

	ASSERT_EQ(0, mig_set(self->d.devfd, VFIO_DEVICE_STATE_PRE_COPY, NULL));
	ASSERT_EQ(0, dma_wait(self));
	EXPECT_TRUE(has_pattern(self->a + 2 * PG, 0, 8));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	EXPECT_EQ(1ULL << 2, bm[0]) TH_LOG("held start issued: %s", bits(bm, PAGES_A));

	ASSERT_EQ(0, mig_set(self->d.devfd, VFIO_DEVICE_STATE_STOP_COPY, NULL));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	EXPECT_EQ(0, bm[0]) TH_LOG("STOP_COPY: %s", bits(bm, PAGES_A));
	close(fd);
	ASSERT_EQ(0, mig_set(self->d.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
	ASSERT_EQ(0, dma_to_ram(self, 0, IOVA_A + 3 * PG, 8));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	EXPECT_EQ(1ULL << 3, bm[0]) TH_LOG("RUNNING again: %s", bits(bm, PAGES_A));
}

/* The last close drops the log: a new open reports nothing and can start again. */
TEST_F(dirty, close_drops_log)
{
	uint64_t bm[1];

	ASSERT_EQ(0, log_start_ab(self->d.devfd));
	ASSERT_EQ(0, dma_to_ram(self, 0, IOVA_A + 4 * PG, 8));
	pvp_dev_close(&self->d);
	ASSERT_EQ(0, pvp_dev_open(self->bdf, &self->d));
	ASSERT_EQ(0, pvp_ioas_map(self->d.iommufd, self->d.ioas_id, self->a, PAGES_A * PG, IOVA_A));
	ASSERT_EQ(0, pvp_ioas_map(self->d.iommufd, self->d.ioas_id, self->b, PAGES_B * PG, IOVA_B));
	EXPECT_EQ(-EINVAL, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	ASSERT_EQ(0, log_start_ab(self->d.devfd));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	EXPECT_EQ(0, bm[0]) TH_LOG("reported %s", bits(bm, PAGES_A));
}

/* Sets or clears memory decoding (COMMAND bit 1), bus mastering untouched: 0 or -errno. */
static int mem_decoding(FIXTURE_DATA(dirty) *self, bool on)
{
	uint64_t cfg = 0, cfgsz = 0;
	uint16_t cmd = 0;
	int err = pvp_config_size(self->d.devfd, &cfg, &cfgsz);

	if (err)
		return err;
	if (pread(self->d.devfd, &cmd, 2, cfg + 4) != 2)
		return -EIO;
	cmd = on ? cmd | 0x2 : cmd & ~0x2;
	return pwrite(self->d.devfd, &cmd, 2, cfg + 4) == 2 ? 0 : -EIO;
}

/*
 * C1: a DMA outlives a report while memory decoding is off. The guest starts a device-to-RAM
 * DMA (logged), then clears memory decoding with bus mastering on: edu still writes RAM. A
 * report must see the DMA running (the driver reads the device with decoding on for its own
 * access), so every report until one sees the device idle includes its pages. Read as "idle"
 * (what a BAR that does not decode returns), the first report forgets it, the DMA lands after
 * it, and no later report has the page: a stale page on the destination.
 */
TEST_F(dirty, C1_dma_outlives_report_when_memory_off)
{
	uint64_t bm[1];
	int i;

	ASSERT_EQ(0, log_start_ab(self->d.devfd));
	memset(self->a, 0xaa, PG);
	ASSERT_EQ(0, dma_issue(self, EDU_BUF, IOVA_A, PG, EDU_DMA_START | EDU_DMA_TO_RAM));
	ASSERT_EQ(0, mem_decoding(self, false));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	EXPECT_EQ(1ULL, bm[0]) TH_LOG("first report: %s", bits(bm, PAGES_A));
	/* edu writes RAM (bus mastering is on), after the first report. */
	for (i = 0; i < 300 && self->a[0] == 0xaa; i++)
		usleep(10000);
	ASSERT_NE(0xaa, self->a[0]) TH_LOG("the DMA never wrote RAM");
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	EXPECT_EQ(1ULL, bm[0]) TH_LOG("report after the DMA landed: %s", bits(bm, PAGES_A));
	/* Decoding back on: a report sees the device idle, includes the DMA once more, forgets it. */
	ASSERT_EQ(0, mem_decoding(self, true));
	ASSERT_EQ(0, dma_wait(self));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	ASSERT_EQ(0, log_report(self->d.devfd, IOVA_A, PAGES_A * PG, PG, bm, 1));
	EXPECT_EQ(0, bm[0]) TH_LOG("after the DMA was seen finished: %s", bits(bm, PAGES_A));
}

/*
 * C1: RUNNING -> STOP with memory decoding off while a DMA runs. The driver reads the device with
 * decoding turned on for its own access (as vfio-pci-core does for the MSI-X table): it sees the
 * transfer and waits for it, so when STOP returns the DMA has landed in RAM. (Read as "idle",
 * what a BAR that does not decode returns, STOP returned with the transfer still running.)
 */
TEST_F(dirty, C1_stop_with_memory_off_waits_for_dma)
{
	uint32_t st = VFIO_DEVICE_STATE_RUNNING;
	bool landed;
	int err;

	memset(self->a, 0xaa, PG);
	ASSERT_EQ(0, dma_issue(self, EDU_BUF, IOVA_A, PG, EDU_DMA_START | EDU_DMA_TO_RAM));
	ASSERT_EQ(0, mem_decoding(self, false));
	err = mig_set(self->d.devfd, VFIO_DEVICE_STATE_STOP, NULL);
	landed = has_pattern(self->a, 0, PG);
	EXPECT_EQ(0, err) TH_LOG("RUNNING -> STOP with memory decoding off: %s", strerror(-err));
	EXPECT_TRUE(landed) TH_LOG("STOP returned before the DMA ended");
	ASSERT_EQ(0, pvp_mig_get(self->d.devfd, &st));
	ASSERT_EQ(0, mem_decoding(self, true));
	EXPECT_EQ(0, rd32(self, EDU_DMA_CMD) & EDU_DMA_START);
	ASSERT_EQ(0, dma_wait(self));
	if (st == VFIO_DEVICE_STATE_ERROR)
		ASSERT_EQ(0, pvp_device_reset(self->d.devfd));
	ASSERT_EQ(0, mig_set(self->d.devfd, VFIO_DEVICE_STATE_RUNNING, NULL));
}

/* A function without a migration backend (PVP_BDF_NOLOG) offers no dirty logging. */
TEST(no_backend)
{
	const char *bdf = pvp_env("PVP_BDF_NOLOG");
	struct vfio_device_feature_dma_logging_range r = { .iova = IOVA_A, .length = PG };
	uint64_t bm[1];
	struct pvp_dev d;

	if (!bdf)
		SKIP(return, "PVP_BDF_NOLOG names no function");
	ASSERT_EQ(0, pvp_dev_open(bdf, &d));
	EXPECT_EQ(-ENOTTY, feature(d.devfd, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
					    VFIO_DEVICE_FEATURE_DMA_LOGGING_START, NULL, 0));
	EXPECT_EQ(-ENOTTY, feature(d.devfd, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET |
					    VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, NULL, 0));
	EXPECT_EQ(-ENOTTY, log_start(d.devfd, PG, &r, 1, NULL));
	EXPECT_EQ(-ENOTTY, log_report(d.devfd, IOVA_A, PG, PG, bm, 1));
	pvp_dev_close(&d);
}

TEST_HARNESS_MAIN
