// SPDX-License-Identifier: GPL-2.0
/*
 * What user space sees through two vfio-pci(-core) drivers, compared: the config region read
 * through VFIO (its whole size, in 4-byte and in 1-byte reads), VFIO_DEVICE_GET_INFO, every
 * VFIO_DEVICE_GET_REGION_INFO and every VFIO_DEVICE_GET_IRQ_INFO, capability chains included.
 *
 * Environment:
 *   PVP_BDF_A, PVP_DRIVER_A   first device and the driver to bind it to
 *   PVP_BDF_B, PVP_DRIVER_B   second device and its driver
 *
 * Two devices of the same kind (PVP_BDF_A != PVP_BDF_B): each is bound to its driver and opened
 * through its iommufd cdev; config bytes that legitimately differ between two functions are
 * masked (see cfg_masked()).
 *
 * Same-device mode (PVP_BDF_A == PVP_BDF_B): the device is bound to driver A and dumped, bound to
 * driver B and dumped, and the dumps must be identical byte for byte, with no masking but one:
 * persona-vfio-pci against another driver, the BAR and ROM address bits and the Interrupt Line
 * (see bar_address_bits()).
 *
 * Each test dumps afresh (the harness runs the fixture setup for every test), each dump from a
 * fresh bind, and leaves the devices bound to their drivers.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "pvp_util.h"

#define CFG_MAX		4096
#define MAX_INDEX	64	/* regions or IRQ indexes we are ready to dump */
#define MAX_CAPS	32	/* longest capability chain we follow */
#define MAX_REPORT	16	/* differences logged per comparison */

struct info_rec {
	int err;		/* 0, or the -errno of the query */
	size_t len;
	uint8_t *buf;
};

struct dump {
	char bdf[32];
	char driver[64];
	size_t cfg_size;
	uint8_t cfg4[CFG_MAX];	/* config region in 4-byte reads */
	uint8_t cfg1[CFG_MAX];	/* config region in 1-byte reads */
	struct info_rec dev;
	uint32_t nregions, nirqs;
	struct info_rec region[MAX_INDEX];
	struct info_rec irq[MAX_INDEX];
	int region_oob_err;	/* GET_REGION_INFO at index num_regions */
	int irq_oob_err;	/* GET_IRQ_INFO at index num_irqs */
	int desc_regions;	/* persona descriptor regions set aside (0 or 1) */
};

FIXTURE(compare) {
	bool same;		/* same-device mode: nothing is masked */
	struct dump a, b;
};

/* Region type and subtype of the persona descriptor (see README, issue 5). */
#define PVP_DESC_SUBTYPE	0x50455253u

/* Is this region the persona descriptor: a vendor-type region with the "PERS" subtype? */
static bool is_persona_descriptor(const struct info_rec *r)
{
	const struct vfio_region_info *ri = (const void *)r->buf;
	uint32_t off;

	if (r->err || !ri || !(ri->flags & VFIO_REGION_INFO_FLAG_CAPS))
		return false;
	for (off = ri->cap_offset; off && off + sizeof(struct vfio_region_info_cap_type) <= r->len;) {
		const struct vfio_region_info_cap_type *t = (const void *)(r->buf + off);

		if (t->header.id == VFIO_REGION_INFO_CAP_TYPE)
			return (t->type & VFIO_REGION_TYPE_PCI_VENDOR_TYPE) &&
			       t->subtype == PVP_DESC_SUBTYPE;
		if (t->header.next <= off)
			break;
		off = t->header.next;
	}
	return false;
}

static void dump_free(struct dump *d)
{
	uint32_t i;

	free(d->dev.buf);
	for (i = 0; i < MAX_INDEX; i++) {
		free(d->region[i].buf);
		free(d->irq[i].buf);
	}
	memset(d, 0, sizeof(*d));
}

/* Binds @bdf to @driver, opens it through iommufd and records everything this test compares. */
static void take_dump(struct __test_metadata *_metadata, const char *bdf, const char *driver,
		      struct dump *d)
{
	struct vfio_device_info *info;
	uint64_t cfg_off, cfg_size;
	struct pvp_dev dev;
	void *buf;
	size_t len;
	uint32_t i;

	snprintf(d->bdf, sizeof(d->bdf), "%s", bdf);
	snprintf(d->driver, sizeof(d->driver), "%s", driver);
	ASSERT_TRUE(pvp_driver_registered(driver)) TH_LOG("driver %s not registered", driver);
	/* Every dump starts from a fresh bind, also when the device already had this driver. */
	ASSERT_EQ(0, pvp_unbind(bdf));
	ASSERT_EQ(0, pvp_bind(bdf, driver)) TH_LOG("cannot bind %s to %s", bdf, driver);
	ASSERT_EQ(0, pvp_dev_open(bdf, &dev)) TH_LOG("cannot open %s through iommufd", bdf);

	ASSERT_EQ(0, pvp_config_size(dev.devfd, &cfg_off, &cfg_size));
	ASSERT_LT(0, cfg_size);
	ASSERT_GE(CFG_MAX, cfg_size) TH_LOG("%s: config region of %llu bytes", bdf,
					    (unsigned long long)cfg_size);
	d->cfg_size = cfg_size;
	ASSERT_EQ(0, pvp_config_read(dev.devfd, d->cfg4, d->cfg_size, 4));
	ASSERT_EQ(0, pvp_config_read(dev.devfd, d->cfg1, d->cfg_size, 1));

	d->dev.err = pvp_device_info(dev.devfd, &buf, &len);
	ASSERT_EQ(0, d->dev.err);
	d->dev.buf = buf;
	d->dev.len = len;
	info = buf;
	d->nregions = info->num_regions;
	d->nirqs = info->num_irqs;
	ASSERT_GE(MAX_INDEX, d->nregions);
	ASSERT_GE(MAX_INDEX, d->nirqs);

	for (i = 0; i < d->nregions; i++) {
		d->region[i].err = pvp_region_info(dev.devfd, i, &buf, &len);
		d->region[i].buf = buf;
		d->region[i].len = d->region[i].err ? 0 : len;
	}
	d->region_oob_err = pvp_region_info(dev.devfd, d->nregions, &buf, &len);
	if (!d->region_oob_err)
		free(buf);

	/*
	 * persona-vfio-pci adds exactly one region vfio-pci does not have: the persona
	 * descriptor, last. Set it aside so the rest compares byte for byte with vfio-pci.
	 */
	if (d->nregions && is_persona_descriptor(&d->region[d->nregions - 1])) {
		d->desc_regions = 1;
		d->nregions--;
		info->num_regions--;
	}

	for (i = 0; i < d->nirqs; i++) {
		d->irq[i].err = pvp_irq_info(dev.devfd, i, &buf, &len);
		d->irq[i].buf = buf;
		d->irq[i].len = d->irq[i].err ? 0 : len;
	}
	d->irq_oob_err = pvp_irq_info(dev.devfd, d->nirqs, &buf, &len);
	if (!d->irq_oob_err)
		free(buf);

	pvp_dev_close(&dev);
}

FIXTURE_SETUP(compare)
{
	const char *bdf_a = pvp_env("PVP_BDF_A"), *drv_a = pvp_env("PVP_DRIVER_A");
	const char *bdf_b = pvp_env("PVP_BDF_B"), *drv_b = pvp_env("PVP_DRIVER_B");

	if (!bdf_a || !drv_a || !bdf_b || !drv_b)
		SKIP(return, "PVP_BDF_A, PVP_DRIVER_A, PVP_BDF_B and PVP_DRIVER_B must all be set");
	if (!pvp_driver_registered(drv_a))
		SKIP(return, "driver %s not registered", drv_a);
	if (!pvp_driver_registered(drv_b))
		SKIP(return, "driver %s not registered", drv_b);
	self->same = !strcmp(bdf_a, bdf_b);
	take_dump(_metadata, bdf_a, drv_a, &self->a);
	take_dump(_metadata, bdf_b, drv_b, &self->b);
}

FIXTURE_TEARDOWN(compare)
{
	dump_free(&self->a);
	dump_free(&self->b);
}

/*
 * Config bytes masked when two different functions of the same kind are compared (never in
 * same-device mode):
 *  - BAR0-5 (0x10-0x27) and the expansion ROM BAR (0x30-0x33) of a type 0 header: vfio-pci
 *    virtualizes them but fills them from the function's own resources, so they carry each
 *    function's addresses;
 *  - Interrupt Line (0x3c): written by firmware per slot and passed through as it is.
 * Everything else (IDs, capabilities, their virtualized contents, the extended space) must match.
 */
static bool cfg_masked(const struct dump *d, size_t off)
{
	if ((d->cfg4[PCI_HEADER_TYPE] & 0x7f) != PCI_HEADER_TYPE_NORMAL)
		return false;
	return (off >= PCI_BASE_ADDRESS_0 && off < PCI_BASE_ADDRESS_5 + 4) ||
	       (off >= PCI_ROM_ADDRESS && off < PCI_ROM_ADDRESS + 4) ||
	       off == PCI_INTERRUPT_LINE;
}

/*
 * The config differences persona-vfio-pci makes on purpose on the same device: a persona
 * presents the BAR and ROM registers from its BAR table (issue 10), so they read the type bits
 * (I/O; 64-bit; prefetchable) and never the host's address, which vfio-pci shows; and it owns
 * the Interrupt Line, 0 on a fresh open where vfio-pci shows the host's routing. True when @a
 * and @b at @off differ only in such address bits, or at the Interrupt Line with one side 0.
 */
static bool bar_address_bits(size_t off, uint8_t a, uint8_t b)
{
	uint8_t keep;

	if (off == PCI_INTERRUPT_LINE)
		return !a || !b;
	if (off >= PCI_BASE_ADDRESS_0 && off < PCI_BASE_ADDRESS_5 + 4)
		keep = off % 4 ? 0 : (a & PCI_BASE_ADDRESS_SPACE_IO) ? 0x03 : 0x0f;
	else if (off >= PCI_ROM_ADDRESS && off < PCI_ROM_ADDRESS + 4)
		keep = off == PCI_ROM_ADDRESS ? PCI_ROM_ADDRESS_ENABLE : 0;
	else
		return false;
	return ((a ^ b) & keep) == 0;
}

/*
 * Counts (and logs the first few) differing bytes; @mask selects bytes to ignore; @bars ignores
 * BAR and ROM address bits (bar_address_bits()).
 */
static int diff_bytes_bars(struct __test_metadata *_metadata, const char *what,
			   const uint8_t *a, const uint8_t *b, size_t len,
			   const struct dump *mask, bool bars)
{
	int n = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (a[i] == b[i] || (mask && cfg_masked(mask, i)) ||
		    (bars && bar_address_bits(i, a[i], b[i])))
			continue;
		if (n++ < MAX_REPORT)
			TH_LOG("%s: byte 0x%03zx differs: %02x vs %02x", what, i, a[i], b[i]);
	}
	if (n > MAX_REPORT)
		TH_LOG("%s: %d differing bytes in all", what, n);
	return n;
}

static int diff_bytes(struct __test_metadata *_metadata, const char *what,
		      const uint8_t *a, const uint8_t *b, size_t len,
		      const struct dump *mask)
{
	return diff_bytes_bars(_metadata, what, a, b, len, mask, false);
}

/* Same device, persona-vfio-pci on exactly one side: BAR addresses may differ. */
static bool persona_vs_other(const struct dump *a, const struct dump *b)
{
	return !strcmp(a->driver, "persona-vfio-pci") != !strcmp(b->driver, "persona-vfio-pci");
}

struct cap {
	uint16_t id, version;
	size_t off, size;	/* the capability's place in its info buffer, header included */
};

/*
 * Walks a VFIO capability chain starting at @first (0: none). Each capability runs up to the
 * next one, the last one to the end of the buffer. Returns the number of capabilities, or -1
 * when the chain points outside the buffer, backwards or is too long.
 */
static int parse_caps(const uint8_t *buf, size_t len, size_t fixed, uint32_t first,
		      struct cap *caps)
{
	struct vfio_info_cap_header h;
	uint32_t off = first;
	int n = 0;

	while (off) {
		if (n == MAX_CAPS || off < fixed || off + sizeof(h) > len)
			return -1;
		memcpy(&h, buf + off, sizeof(h));
		if (h.next && (h.next <= off || h.next > len))
			return -1;
		caps[n].id = h.id;
		caps[n].version = h.version;
		caps[n].off = off;
		caps[n].size = (h.next ? h.next : len) - off;
		n++;
		off = h.next;
	}
	return n;
}

/*
 * Structural comparison of two info replies: the fixed part, except the cap_offset field (at
 * @cap_field), byte for byte; then the capability chains as sequences of (id, version, size,
 * payload). In same-device mode the raw buffers must also be identical.
 */
static void expect_same_info(struct __test_metadata *_metadata, FIXTURE_DATA(compare) *self,
			     const char *what, const struct info_rec *a,
			     const struct info_rec *b, size_t fixed, size_t cap_field,
			     bool has_caps_a, bool has_caps_b)
{
	struct cap ca[MAX_CAPS], cb[MAX_CAPS];
	uint32_t first_a = 0, first_b = 0;
	char name[128];
	int na, nb, i;

	EXPECT_EQ(a->err, b->err) TH_LOG("%s: query errno %d vs %d", what, -a->err, -b->err);
	if (a->err || b->err)
		return;
	EXPECT_EQ(a->len, b->len) TH_LOG("%s: argsz %zu vs %zu", what, a->len, b->len);
	ASSERT_LE(fixed, a->len);
	ASSERT_LE(fixed, b->len);

	snprintf(name, sizeof(name), "%s (fixed part)", what);
	EXPECT_EQ(0, diff_bytes(_metadata, name, a->buf, b->buf, cap_field, NULL));
	EXPECT_EQ(0, diff_bytes(_metadata, name, a->buf + cap_field + 4, b->buf + cap_field + 4,
				fixed - cap_field - 4, NULL));

	EXPECT_EQ(has_caps_a, has_caps_b) TH_LOG("%s: FLAG_CAPS differs", what);
	if (has_caps_a)
		memcpy(&first_a, a->buf + cap_field, 4);
	if (has_caps_b)
		memcpy(&first_b, b->buf + cap_field, 4);
	na = parse_caps(a->buf, a->len, fixed, first_a, ca);
	nb = parse_caps(b->buf, b->len, fixed, first_b, cb);
	ASSERT_LE(0, na) TH_LOG("%s: malformed capability chain from %s", what, self->a.driver);
	ASSERT_LE(0, nb) TH_LOG("%s: malformed capability chain from %s", what, self->b.driver);
	EXPECT_EQ(na, nb) TH_LOG("%s: %d vs %d capabilities", what, na, nb);
	for (i = 0; i < na && i < nb; i++) {
		EXPECT_EQ(ca[i].id, cb[i].id) TH_LOG("%s: capability #%d id", what, i);
		EXPECT_EQ(ca[i].version, cb[i].version) TH_LOG("%s: capability #%d version", what, i);
		EXPECT_EQ(ca[i].size, cb[i].size) TH_LOG("%s: capability #%d size", what, i);
		if (ca[i].size != cb[i].size)
			continue;
		snprintf(name, sizeof(name), "%s capability #%d (id %u)", what, i, ca[i].id);
		EXPECT_EQ(0, diff_bytes(_metadata, name, a->buf + ca[i].off + 8,
					b->buf + cb[i].off + 8, ca[i].size - 8, NULL));
	}

	if (self->same && a->len == b->len) {
		snprintf(name, sizeof(name), "%s (raw)", what);
		EXPECT_EQ(0, diff_bytes(_metadata, name, a->buf, b->buf, a->len, NULL));
	}
}

/* The config region has the same size and the same bytes, read four bytes at a time. */
TEST_F(compare, config_dwords)
{
	EXPECT_EQ(self->a.cfg_size, self->b.cfg_size);
	EXPECT_EQ(0, diff_bytes_bars(_metadata, "config (4-byte reads)", self->a.cfg4,
				     self->b.cfg4,
				     self->a.cfg_size < self->b.cfg_size ?
				     self->a.cfg_size : self->b.cfg_size,
				     self->same ? NULL : &self->a,
				     self->same && persona_vs_other(&self->a, &self->b)));
}

/* ... and read one byte at a time. */
TEST_F(compare, config_bytes)
{
	EXPECT_EQ(self->a.cfg_size, self->b.cfg_size);
	EXPECT_EQ(0, diff_bytes_bars(_metadata, "config (1-byte reads)", self->a.cfg1,
				     self->b.cfg1,
				     self->a.cfg_size < self->b.cfg_size ?
				     self->a.cfg_size : self->b.cfg_size,
				     self->same ? NULL : &self->a,
				     self->same && persona_vs_other(&self->a, &self->b)));
}

/* Within each driver, byte reads and dword reads of the config region agree. */
TEST_F(compare, config_bytes_match_dwords)
{
	EXPECT_EQ(0, diff_bytes(_metadata, "config of A (1- vs 4-byte reads)", self->a.cfg1,
				self->a.cfg4, self->a.cfg_size, NULL));
	EXPECT_EQ(0, diff_bytes(_metadata, "config of B (1- vs 4-byte reads)", self->b.cfg1,
				self->b.cfg4, self->b.cfg_size, NULL));
}

/* Each driver has the descriptor region exactly when it is persona-vfio-pci. */
TEST_F(compare, descriptor_region)
{
	EXPECT_EQ(!strcmp(self->a.driver, "persona-vfio-pci"), self->a.desc_regions);
	EXPECT_EQ(!strcmp(self->b.driver, "persona-vfio-pci"), self->b.desc_regions);
}

TEST_F(compare, device_info)
{
	const struct vfio_device_info *ia = (void *)self->a.dev.buf;
	const struct vfio_device_info *ib = (void *)self->b.dev.buf;

	EXPECT_EQ(ia->flags, ib->flags);
	EXPECT_EQ(ia->num_regions, ib->num_regions);
	EXPECT_EQ(ia->num_irqs, ib->num_irqs);
	expect_same_info(_metadata, self, "device info", &self->a.dev, &self->b.dev,
			 sizeof(struct vfio_device_info),
			 offsetof(struct vfio_device_info, cap_offset),
			 ia->flags & VFIO_DEVICE_FLAGS_CAPS, ib->flags & VFIO_DEVICE_FLAGS_CAPS);
}

/*
 * The one region difference persona-vfio-pci makes on purpose: an edu's BAR0 is trapped for
 * migration (the driver shadows writes), so it offers no mmap. Checks that and folds the flag
 * back in, so the rest of the reply is still compared byte for byte.
 */
static void fold_trapped_bar0(struct __test_metadata *_metadata, struct dump *d)
{
	static const uint8_t edu_ids[4] = { 0x34, 0x12, 0xe8, 0x11 };
	struct vfio_region_info *r = (void *)d->region[0].buf;

	if (strcmp(d->driver, "persona-vfio-pci") || memcmp(d->cfg4, edu_ids, 4) || !r ||
	    d->region[0].err)
		return;
	EXPECT_EQ(0, r->flags & VFIO_REGION_INFO_FLAG_MMAP)
		TH_LOG("%s: edu BAR0 must not be mappable on persona-vfio-pci", d->bdf);
	r->flags |= VFIO_REGION_INFO_FLAG_MMAP;
}

TEST_F(compare, region_info)
{
	uint32_t i, n = self->a.nregions;
	char what[64];

	if (n && self->b.nregions) {
		fold_trapped_bar0(_metadata, &self->a);
		fold_trapped_bar0(_metadata, &self->b);
	}
	EXPECT_EQ(self->a.nregions, self->b.nregions);
	if (self->b.nregions < n)
		n = self->b.nregions;
	for (i = 0; i < n; i++) {
		const struct vfio_region_info *ra = (void *)self->a.region[i].buf;
		const struct vfio_region_info *rb = (void *)self->b.region[i].buf;

		snprintf(what, sizeof(what), "region %u", i);
		expect_same_info(_metadata, self, what, &self->a.region[i], &self->b.region[i],
				 sizeof(struct vfio_region_info),
				 offsetof(struct vfio_region_info, cap_offset),
				 ra && (ra->flags & VFIO_REGION_INFO_FLAG_CAPS),
				 rb && (rb->flags & VFIO_REGION_INFO_FLAG_CAPS));
	}
	/* One past the last region: both refuse it the same way. */
	EXPECT_NE(0, self->a.region_oob_err);
	EXPECT_EQ(self->a.region_oob_err, self->b.region_oob_err);
}

TEST_F(compare, irq_info)
{
	uint32_t i, n = self->a.nirqs;
	char what[64];

	EXPECT_EQ(self->a.nirqs, self->b.nirqs);
	if (self->b.nirqs < n)
		n = self->b.nirqs;
	for (i = 0; i < n; i++) {
		const struct info_rec *a = &self->a.irq[i], *b = &self->b.irq[i];

		snprintf(what, sizeof(what), "irq index %u", i);
		EXPECT_EQ(a->err, b->err) TH_LOG("%s: query errno %d vs %d", what, -a->err, -b->err);
		if (a->err || b->err)
			continue;
		EXPECT_EQ(a->len, b->len);
		if (a->len == b->len) {
			EXPECT_EQ(0, diff_bytes(_metadata, what, a->buf, b->buf, a->len, NULL));
		}
	}
	EXPECT_NE(0, self->a.irq_oob_err);
	EXPECT_EQ(self->a.irq_oob_err, self->b.irq_oob_err);
}

TEST_HARNESS_MAIN
