// SPDX-License-Identifier: GPL-2.0
/*
 * The cross-layout case of persona-vfio-pci: two edu functions whose physical config spaces have
 * different layouts (the second made to present another firmware revision's by the test-only
 * fixture tests/fixtures/layout: other subsystem IDs, a vendor-specific capability ahead of MSI,
 * MSI at another offset), both bound to persona-vfio-pci under one persona:
 *
 *   - their physical config spaces (sysfs config) differ;
 *   - their config regions as a VFIO user reads them are byte-identical: the region's size, its
 *     whole contents in 4-byte and in 1-byte reads, and every dword offset up to 4 KiB (each
 *     read answered, or refused, the same way on both);
 *   - MSI works on each through the persona: an eventfd set with VFIO_DEVICE_SET_IRQS is
 *     signalled when a factorial with its interrupt enabled completes.
 *
 * Environment: PVP_BDF_A, PVP_BDF_B (both bound to persona-vfio-pci, the same persona in force).
 * Migration between the two is persona_migration_test's, run with the same pair.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "edu.h"
#include "pvp_util.h"

#define CFG_MAX		4096
#define MAX_REPORT	16
#define EDU_IRQ_STATUS	0x24
#define EDU_IRQ_ACK	0x64
#define EDU_STATUS_IRQ	0x80	/* raise an interrupt when the factorial completes */
#define EDU_FACT_IRQ	0x1	/* the factorial's bit in the IRQ status register */

FIXTURE(layout) {
	const char *bdf[2];
	struct pvp_dev d[2];
};

FIXTURE_SETUP(layout)
{
	self->bdf[0] = pvp_env("PVP_BDF_A");
	self->bdf[1] = pvp_env("PVP_BDF_B");
	self->d[0].devfd = self->d[1].devfd = -1;
	if (!self->bdf[0] || !self->bdf[1])
		SKIP(return, "PVP_BDF_A and PVP_BDF_B name two edu functions");
	ASSERT_EQ(0, pvp_dev_open(self->bdf[0], &self->d[0]));
	ASSERT_EQ(0, pvp_dev_open(self->bdf[1], &self->d[1]));
}

FIXTURE_TEARDOWN(layout)
{
	int i;

	for (i = 0; i < 2; i++)
		if (self->d[i].devfd >= 0)
			pvp_dev_close(&self->d[i]);
}

/* Counts (and logs the first few) differing bytes of @a and @b. */
static int diff_bytes(struct __test_metadata *_metadata, const char *what, const uint8_t *a,
		      const uint8_t *b, size_t len)
{
	size_t i;
	int n = 0;

	for (i = 0; i < len; i++) {
		if (a[i] == b[i])
			continue;
		if (n++ < MAX_REPORT)
			TH_LOG("%s: byte 0x%03zx differs: %02x vs %02x", what, i, a[i], b[i]);
	}
	if (n > MAX_REPORT)
		TH_LOG("%s: %d differing bytes in all", what, n);
	return n;
}

/* The function's config space as the kernel sees it (sysfs config, as root): bytes read. */
static ssize_t sysfs_config(const char *bdf, uint8_t *buf, size_t len)
{
	char path[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), PVP_PCI_DEVICES "/%s/config", bdf);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = pread(fd, buf, len, 0);
	if (n < 0)
		n = -errno;
	close(fd);
	return n;
}

/* The two physical layouts differ: otherwise the comparison below would prove nothing. */
TEST_F(layout, cross_layout_physical_config_differs)
{
	static uint8_t a[CFG_MAX], b[CFG_MAX];
	ssize_t na = sysfs_config(self->bdf[0], a, sizeof(a));
	ssize_t nb = sysfs_config(self->bdf[1], b, sizeof(b));

	ASSERT_LT(0, na) TH_LOG("%s: %s", self->bdf[0], strerror(-na));
	ASSERT_EQ(na, nb);
	/* The BAR addresses and the interrupt line are each function's own: look past them. */
	memset(a + PCI_BASE_ADDRESS_0, 0, 24);
	memset(b + PCI_BASE_ADDRESS_0, 0, 24);
	a[PCI_INTERRUPT_LINE] = b[PCI_INTERRUPT_LINE] = 0;
	EXPECT_LT(0, diff_bytes(_metadata, "physical", a, b, na))
		TH_LOG("%s and %s have the same physical config space", self->bdf[0], self->bdf[1]);
}

/*
 * The config regions: same size, the same bytes in 4-byte and in 1-byte reads, and every dword
 * offset below 4 KiB read the same way (bytes, or the same error past the region's end).
 */
TEST_F(layout, cross_layout_config_regions_identical)
{
	static uint8_t c4[2][CFG_MAX], c1[2][CFG_MAX];
	uint64_t off[2], size[2];
	int i, n = 0;
	size_t pos;

	for (i = 0; i < 2; i++) {
		/*
		 * What a user writes is each function's own state, not its layout: suites before this
		 * one may have left COMMAND (I/O enable) and the Interrupt Line set on one edu only.
		 * The same values on both, through VFIO, before comparing.
		 */
		uint16_t cmd = PCI_COMMAND_MEMORY;
		uint8_t line = 0;

		ASSERT_EQ(0, pvp_config_size(self->d[i].devfd, &off[i], &size[i]));
		ASSERT_GE(CFG_MAX, size[i]);
		ASSERT_EQ(2, pwrite(self->d[i].devfd, &cmd, 2, off[i] + PCI_COMMAND));
		ASSERT_EQ(1, pwrite(self->d[i].devfd, &line, 1, off[i] + PCI_INTERRUPT_LINE));
		ASSERT_EQ(0, pvp_config_read(self->d[i].devfd, c4[i], size[i], 4));
		ASSERT_EQ(0, pvp_config_read(self->d[i].devfd, c1[i], size[i], 1));
	}
	TH_LOG("config region: %llu bytes on %s, %llu on %s", (unsigned long long)size[0],
	       self->bdf[0], (unsigned long long)size[1], self->bdf[1]);
	ASSERT_EQ(size[0], size[1]);
	EXPECT_EQ(0, diff_bytes(_metadata, "4-byte reads", c4[0], c4[1], size[0]));
	EXPECT_EQ(0, diff_bytes(_metadata, "1-byte reads", c1[0], c1[1], size[0]));
	EXPECT_EQ(0, diff_bytes(_metadata, "4-byte vs 1-byte reads", c4[1], c1[1], size[0]));

	for (pos = 0; pos < CFG_MAX; pos += 4) {
		uint32_t v[2] = { 0, 0 };
		ssize_t r[2];
		int e[2];

		for (i = 0; i < 2; i++) {
			errno = 0;
			r[i] = pread(self->d[i].devfd, &v[i], 4, off[i] + pos);
			e[i] = r[i] < 0 ? errno : 0;
		}
		if (r[0] == r[1] && e[0] == e[1] && v[0] == v[1])
			continue;
		if (n++ < MAX_REPORT)
			TH_LOG("offset 0x%03zx: %zd (%s) 0x%08x vs %zd (%s) 0x%08x", pos, r[0],
			       strerror(e[0]), v[0], r[1], strerror(e[1]), v[1]);
	}
	EXPECT_EQ(0, n) TH_LOG("%d dword offsets below 4 KiB read differently", n);
}

/* BAR0's offset in the device file. */
static int bar0_off(int devfd, uint64_t *off)
{
	uint32_t flags;

	return pvp_region_offset(devfd, VFIO_PCI_BAR0_REGION_INDEX, off, &flags);
}

static int wr32(int devfd, uint64_t at, uint32_t v)
{
	return pwrite(devfd, &v, 4, at) == 4 ? 0 : -errno;
}

static uint32_t rd32(int devfd, uint64_t at)
{
	uint32_t v = 0xdeadbeef;

	return pread(devfd, &v, 4, at) == 4 ? v : 0xdeadbeef;
}

/* MSI vector 0 to @efd (-1: MSI off): 0 or -errno. */
static int msi_eventfd(int devfd, int efd)
{
	uint8_t buf[sizeof(struct vfio_irq_set) + sizeof(int32_t)] = {};
	struct vfio_irq_set *set = (void *)buf;

	set->argsz = efd >= 0 ? sizeof(buf) : sizeof(*set);
	set->flags = VFIO_IRQ_SET_ACTION_TRIGGER |
		     (efd >= 0 ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE);
	set->index = VFIO_PCI_MSI_IRQ_INDEX;
	set->count = efd >= 0 ? 1 : 0;
	memcpy(set->data, &efd, sizeof(efd));
	return ioctl(devfd, VFIO_DEVICE_SET_IRQS, set) ? -errno : 0;
}

/*
 * On each function: MSI on through VFIO_DEVICE_SET_IRQS with an eventfd, memory and bus master
 * on, a factorial with its interrupt enabled; the eventfd must be signalled (edu raises INTx
 * instead when its MSI capability is not enabled, which this eventfd would never see).
 */
TEST_F(layout, cross_layout_msi_delivered)
{
	int i;

	for (i = 0; i < 2; i++) {
		int devfd = self->d[i].devfd, efd, t;
		uint64_t cfg, cfg_size, bar, cnt = 0;
		uint16_t cmd = 0;
		uint32_t st;

		ASSERT_EQ(0, bar0_off(devfd, &bar));
		ASSERT_EQ(0, pvp_config_size(devfd, &cfg, &cfg_size));
		ASSERT_EQ(2, pread(devfd, &cmd, 2, cfg + PCI_COMMAND));
		cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
		ASSERT_EQ(2, pwrite(devfd, &cmd, 2, cfg + PCI_COMMAND));
		efd = eventfd(0, EFD_NONBLOCK);
		ASSERT_LE(0, efd);
		ASSERT_EQ(0, msi_eventfd(devfd, efd)) TH_LOG("%s: MSI eventfd", self->bdf[i]);
		ASSERT_EQ(0, wr32(devfd, bar + EDU_IRQ_ACK, 0xffffffff));
		ASSERT_EQ(0, wr32(devfd, bar + EDU_STATUS, EDU_STATUS_IRQ));
		ASSERT_EQ(0, wr32(devfd, bar + EDU_FACT, 5));
		for (t = 0; t < 300 && read(efd, &cnt, 8) != 8; t++)
			usleep(10000);
		st = rd32(devfd, bar + EDU_IRQ_STATUS);
		EXPECT_LT(0, cnt) TH_LOG("%s: no MSI after the factorial (IRQ status 0x%x)",
					 self->bdf[i], st);
		EXPECT_EQ(EDU_FACT_IRQ, st & EDU_FACT_IRQ) TH_LOG("%s", self->bdf[i]);
		EXPECT_EQ(120, rd32(devfd, bar + EDU_FACT)) TH_LOG("%s: 5!", self->bdf[i]);
		TH_LOG("%s: MSI delivered %llu time(s) after 5! (IRQ status 0x%x)", self->bdf[i],
		       (unsigned long long)cnt, st);
		ASSERT_EQ(0, wr32(devfd, bar + EDU_IRQ_ACK, 0xffffffff));
		ASSERT_EQ(0, wr32(devfd, bar + EDU_STATUS, 0));
		EXPECT_EQ(0, msi_eventfd(devfd, -1));
		close(efd);
	}
}

TEST_HARNESS_MAIN
