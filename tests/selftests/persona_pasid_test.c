// SPDX-License-Identifier: GPL-2.0
/*
 * PASID through a vfio-pci(-core) driver and iommufd, checked against the IOMMU's own tables.
 *
 * Return codes alone prove nothing here: on the test kernel a PASID attach on a device without
 * a PASID capability returns 0. So every positive case is also checked by an oracle that reads
 * the guest intel-iommu's tables through debugfs (iommu/intel/dmar_translation_struct, the
 * walk of root, context and PASID tables): a PASID counts as bound when its PASID table entry
 * is present AND the device's context entry has PASID Enable set (without it the IOMMU rejects
 * every PASID-tagged request); its domain is the entry's Domain ID. The per-{device, PASID}
 * debugfs directory (iommu/intel/<bdf>/<pasid>) is checked as well.
 *
 * The device comes from the environment, bound by the test itself:
 *   PVP_BDF             the PCI function (the nvme with the PASID fixture in the test guest)
 *   PVP_DRIVER          the driver to test (vfio-pci, persona-vfio-pci)
 *   PVP_PASID_WIDTH     the out_max_pasid_log2 expected from IOMMU_GET_HW_INFO (default 20)
 *   PVP_NO_PASID        1: the device, or the driver's view of it, has no PASID: the positive
 *                       cases are skipped and no_pasid_device_not_bound runs (default: 1 when
 *                       PVP_PASID_WIDTH is 0)
 * Expected errnos where drivers may differ (a name such as EINVAL, or 0 for success; the
 * defaults are what vfio-pci gives on the test kernel):
 *   PVP_EXPECT_PASID0           PASID 0 attach while the RID is detached (default 0: vfio-pci
 *                               attaches the RID through the PASID path)
 *   PVP_EXPECT_PASID0_RID       PASID 0 attach while the RID is attached (default EBUSY)
 *   PVP_EXPECT_PASID_HUGE       PASID 0x80000000 (default ENOSPC)
 *   PVP_EXPECT_DETACH_UNKNOWN   detach of a PASID never attached (default 0)
 *   PVP_EXPECT_NOCAP_ATTACH     PASID attach with PVP_NO_PASID (default 0; a driver that
 *                               checks gives EOPNOTSUPP)
 *   PVP_EXPECT_PHYS_CTRL_WRITABLE  1: a write through the VFIO config region at the physical
 *                               PASID Control's offset reaches it (vfio-pci); default 0
 * The configuration space part runs only when the driver presents a virtual PASID capability:
 *   PVP_PASID_CAP_OFFSET        its offset in the VFIO config region (e.g. 0xff8), or "auto":
 *                               wherever the chain leads (there must be one)
 * Without it the test checks that no PASID capability is visible through VFIO (vfio-pci hides
 * the physical one).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>

#include <linux/iommufd.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "kselftest_harness.h"
#include "pvp_util.h"

#define DEBUGFS_VTD	"/sys/kernel/debug/iommu/intel"
#define CTX_LO_PASIDE	(1ULL << 3)	/* scalable-mode context entry: PASID Enable */
#define PE_PRESENT	(1ULL << 0)
#define NPASIDS		65		/* 1..32, 32 spread over the range, and the largest */
#define MAX_ENTRIES	4096

/* ---- the oracle ---------------------------------------------------------------------------- */

struct vtd_entry {
	uint32_t pasid;
	uint64_t ctx_lo;
	uint64_t val[3];
};

struct oracle {
	int n;
	struct vtd_entry e[MAX_ENTRIES];
};

enum bound_state { NOT_LISTED, NO_PASIDE, BOUND };

static const char *bound_name(enum bound_state s)
{
	return s == BOUND ? "bound" : s == NO_PASIDE ? "listed, but PASID Enable clear" : "not listed";
}

/* Read every PASID table entry of @bdf ("DDDD:BB:DD.F") from the IOMMU's table walk. */
static int oracle_read(const char *bdf, struct oracle *o)
{
	unsigned int dom, bus, dev, fn, b, d, f;
	char line[512];
	FILE *fp;

	if (sscanf(bdf, "%x:%x:%x.%x", &dom, &bus, &dev, &fn) != 4)
		return -EINVAL;
	fp = fopen(DEBUGFS_VTD "/dmar_translation_struct", "r");
	if (!fp)
		return -errno;
	o->n = 0;
	while (fgets(line, sizeof(line), fp)) {
		unsigned long long rhi, rlo, chi, clo, v2, v1, v0;
		int pasid;

		if (sscanf(line, "%x:%x.%x\t0x%llx:0x%llx\t0x%llx:0x%llx\t%d\t0x%llx:0x%llx:0x%llx",
			   &b, &d, &f, &rhi, &rlo, &chi, &clo, &pasid, &v2, &v1, &v0) != 11)
			continue;
		if (b != bus || d != dev || f != fn || pasid < 0 || o->n == MAX_ENTRIES)
			continue;
		o->e[o->n++] = (struct vtd_entry){ pasid, clo, { v0, v1, v2 } };
	}
	fclose(fp);
	return 0;
}

static const struct vtd_entry *oracle_find(const struct oracle *o, uint32_t pasid)
{
	int i;

	for (i = 0; i < o->n; i++)
		if (o->e[i].pasid == pasid)
			return &o->e[i];
	return NULL;
}

static enum bound_state oracle_state(const struct oracle *o, uint32_t pasid)
{
	const struct vtd_entry *e = oracle_find(o, pasid);

	if (!e || !(e->val[0] & PE_PRESENT))
		return NOT_LISTED;
	/* Requests without PASID use the RID's entry (PASID 0) and need no PASID Enable. */
	if (pasid && !(e->ctx_lo & CTX_LO_PASIDE))
		return NO_PASIDE;
	return BOUND;
}

/* The Domain ID of @pasid's entry, -1 when not listed. */
static int oracle_did(const struct oracle *o, uint32_t pasid)
{
	const struct vtd_entry *e = oracle_find(o, pasid);

	return e ? (int)(e->val[1] & 0xffff) : -1;
}

/* Number of PASIDs other than 0 listed for the device. */
static int oracle_count_pasids(const struct oracle *o)
{
	int i, n = 0;

	for (i = 0; i < o->n; i++)
		n += o->e[i].pasid != 0;
	return n;
}

static bool debugfs_pasid_dir(const char *bdf, uint32_t pasid)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), DEBUGFS_VTD "/%s/%x", bdf, pasid);
	return pvp_exists(path);
}

/* ---- environment --------------------------------------------------------------------------- */

static const struct { const char *name; int err; } errnames[] = {
	{ "EINVAL", EINVAL }, { "EBUSY", EBUSY }, { "ENOSPC", ENOSPC }, { "ENODEV", ENODEV },
	{ "ENOENT", ENOENT }, { "EOPNOTSUPP", EOPNOTSUPP }, { "ENOTTY", ENOTTY },
	{ "EPERM", EPERM }, { "ENXIO", ENXIO }, { "ERANGE", ERANGE },
};

/* An expected result from the environment: 0 or a positive errno. */
static int env_errno(const char *var, int dflt)
{
	const char *v = pvp_env(var);
	size_t i;

	if (!v)
		return dflt;
	for (i = 0; i < ARRAY_SIZE(errnames); i++)
		if (!strcasecmp(v, errnames[i].name))
			return errnames[i].err;
	return abs(atoi(v));
}

static const char *errname(int err)
{
	size_t i;

	if (!err)
		return "0";
	for (i = 0; i < ARRAY_SIZE(errnames); i++)
		if (errnames[i].err == err)
			return errnames[i].name;
	return strerror(err);
}

/* ---- ioctls, each returning 0 or a positive errno ------------------------------------------ */

static int hwpt_alloc(int iommufd, uint32_t dev_id, uint32_t pt_id, uint32_t flags, uint32_t *out)
{
	struct iommu_hwpt_alloc a = {
		.size = sizeof(a), .flags = flags, .dev_id = dev_id, .pt_id = pt_id,
		.data_type = IOMMU_HWPT_DATA_NONE,
	};

	if (ioctl(iommufd, IOMMU_HWPT_ALLOC, &a))
		return errno;
	*out = a.out_hwpt_id;
	return 0;
}

static int hw_info(int iommufd, uint32_t dev_id, struct iommu_hw_info *info)
{
	memset(info, 0, sizeof(*info));
	info->size = sizeof(*info);
	info->dev_id = dev_id;
	return ioctl(iommufd, IOMMU_GET_HW_INFO, info) ? errno : 0;
}

static int attach_rid(int devfd, uint32_t pt_id)
{
	return -pvp_attach_pt(devfd, pt_id, NULL);
}

static int detach_rid(int devfd)
{
	return -pvp_detach_pt(devfd);
}

static int attach_pasid(int devfd, uint32_t pasid, uint32_t pt_id)
{
	struct vfio_device_attach_iommufd_pt a = {
		.argsz = sizeof(a), .flags = VFIO_DEVICE_ATTACH_PASID, .pt_id = pt_id, .pasid = pasid,
	};

	return ioctl(devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &a) ? errno : 0;
}

static int detach_pasid(int devfd, uint32_t pasid)
{
	struct vfio_device_detach_iommufd_pt d = {
		.argsz = sizeof(d), .flags = VFIO_DEVICE_DETACH_PASID, .pasid = pasid,
	};

	return ioctl(devfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &d) ? errno : 0;
}

/*
 * ---- fixture -------------------------------------------------------------------------------
 * Loops and ifs around ASSERT_*() keep their braces: the harness's ASSERT is two statements.
 */

FIXTURE(pasid) {
	const char *bdf;
	int width;		/* expected out_max_pasid_log2 */
	bool no_pasid;		/* PVP_NO_PASID */
	int iommufd;
	int devfd;
	uint32_t dev_id;
	uint32_t ioas_a, ioas_b;
	uint32_t hwpt_a, hwpt_b;	/* paging HWPTs with IOMMU_HWPT_ALLOC_PASID, one per IOAS */
	uint32_t hwpt_plain;		/* a paging HWPT on IOAS A without the flag */
	struct oracle o;
};

FIXTURE_SETUP(pasid)
{
	const char *driver = pvp_env("PVP_DRIVER");
	const char *w = pvp_env("PVP_PASID_WIDTH");
	int err;

	self->iommufd = -1;
	self->devfd = -1;
	self->bdf = pvp_env("PVP_BDF");
	self->width = w ? atoi(w) : 20;
	self->no_pasid = pvp_env("PVP_NO_PASID") ? atoi(pvp_env("PVP_NO_PASID")) : !self->width;
	if (!self->bdf || !driver)
		SKIP(return, "PVP_BDF and PVP_DRIVER name the device and the driver to test");
	if (access(DEBUGFS_VTD "/dmar_translation_struct", R_OK))
		SKIP(return, "no intel-iommu debugfs (DEBUG_FS, INTEL_IOMMU_DEBUGFS): no oracle");

	err = pvp_bind(self->bdf, driver);
	ASSERT_EQ(0, err) TH_LOG("bind %s to %s: %s", self->bdf, driver, strerror(-err));
	self->iommufd = pvp_iommufd_open();
	ASSERT_LE(0, self->iommufd);
	self->devfd = pvp_cdev_open(self->bdf);
	ASSERT_LE(0, self->devfd) TH_LOG("open the cdev: %s", strerror(-self->devfd));
	ASSERT_EQ(0, pvp_bind_iommufd(self->devfd, self->iommufd, &self->dev_id));
	ASSERT_EQ(0, pvp_ioas_alloc(self->iommufd, &self->ioas_a));
	ASSERT_EQ(0, pvp_ioas_alloc(self->iommufd, &self->ioas_b));
	ASSERT_EQ(0, hwpt_alloc(self->iommufd, self->dev_id, self->ioas_a, IOMMU_HWPT_ALLOC_PASID,
				&self->hwpt_a));
	ASSERT_EQ(0, hwpt_alloc(self->iommufd, self->dev_id, self->ioas_b, IOMMU_HWPT_ALLOC_PASID,
				&self->hwpt_b));
	ASSERT_EQ(0, hwpt_alloc(self->iommufd, self->dev_id, self->ioas_a, 0, &self->hwpt_plain));
}

FIXTURE_TEARDOWN(pasid)
{
	if (self->devfd >= 0)
		close(self->devfd);
	if (self->iommufd >= 0)
		close(self->iommufd);
}

#define NEED_PASID() do {							\
	if (self->no_pasid)							\
		SKIP(return, "PVP_NO_PASID: the device has no PASID");		\
} while (0)

/* Read the oracle and assert @pasid's state. */
#define ASSERT_ORACLE(pasid, want) do {						\
	ASSERT_EQ(0, oracle_read(self->bdf, &self->o));				\
	ASSERT_EQ(want, oracle_state(&self->o, pasid))				\
		TH_LOG("oracle: PASID %#x is %s, expected %s", (pasid),		\
		       bound_name(oracle_state(&self->o, pasid)), bound_name(want)); \
} while (0)

/* The device still works: RID on A, PASID 1 attached and bound, detached again. */
#define ASSERT_USABLE() do {							\
	ASSERT_EQ(0, attach_rid(self->devfd, self->hwpt_a));			\
	ASSERT_EQ(0, attach_pasid(self->devfd, 1, self->hwpt_a));		\
	ASSERT_ORACLE(1, BOUND);						\
	ASSERT_EQ(0, detach_pasid(self->devfd, 1));				\
	ASSERT_ORACLE(1, NOT_LISTED);						\
} while (0)

/* The PASIDs of the bulk case: 1..32, 32 spread over the range, and the largest. */
static void pasid_set(int width, uint32_t *p)
{
	uint32_t max = (1U << width) - 1;
	int i;

	for (i = 0; i < 32; i++)
		p[i] = i + 1;
	for (i = 0; i < 32; i++)
		p[32 + i] = ((uint32_t)i << (width - 5)) + 0x40 + i;
	p[NPASIDS - 1] = max;
}

TEST_F(pasid, hw_info_reports_width)
{
	struct iommu_hw_info info;

	ASSERT_EQ(0, hw_info(self->iommufd, self->dev_id, &info));
	EXPECT_EQ(self->width, info.out_max_pasid_log2);
	TH_LOG("out_max_pasid_log2 %u, out_capabilities %#llx", info.out_max_pasid_log2,
	       (unsigned long long)info.out_capabilities);
}

TEST_F(pasid, rid_on_pasid_hwpt)
{
	NEED_PASID();
	ASSERT_EQ(0, attach_rid(self->devfd, self->hwpt_a));
	ASSERT_ORACLE(0, BOUND);
	ASSERT_EQ(0, detach_rid(self->devfd));
	ASSERT_EQ(0, attach_rid(self->devfd, self->hwpt_b));
	ASSERT_ORACLE(0, BOUND);
}

TEST_F(pasid, many_pasids_two_ioas_replace_detach)
{
	uint32_t p[NPASIDS], hwpt[NPASIDS];
	int i, did_a, did_b, did_rid, moved;

	NEED_PASID();
	if (self->width < 12)
		SKIP(return, "the PASID set needs a width of at least 12");
	pasid_set(self->width, p);

	ASSERT_EQ(0, attach_rid(self->devfd, self->hwpt_a));
	for (i = 0; i < NPASIDS; i++) {
		hwpt[i] = i % 2 ? self->hwpt_b : self->hwpt_a;
		ASSERT_EQ(0, attach_pasid(self->devfd, p[i], hwpt[i]))
			TH_LOG("attach PASID %#x", p[i]);
	}

	/* Every PASID bound, each to its HWPT's domain; the RID's domain is A's. */
	ASSERT_EQ(0, oracle_read(self->bdf, &self->o));
	for (i = 0; i < NPASIDS; i++) {
		ASSERT_EQ(BOUND, oracle_state(&self->o, p[i]))
			TH_LOG("PASID %#x: %s", p[i], bound_name(oracle_state(&self->o, p[i])));
	}
	did_a = oracle_did(&self->o, p[0]);
	did_b = oracle_did(&self->o, p[1]);
	did_rid = oracle_did(&self->o, 0);
	ASSERT_NE(did_a, did_b) TH_LOG("two HWPTs on two IOAS share Domain ID %d", did_a);
	ASSERT_EQ(did_a, did_rid);
	for (i = 0; i < NPASIDS; i++) {
		ASSERT_EQ(hwpt[i] == self->hwpt_a ? did_a : did_b, oracle_did(&self->o, p[i]))
			TH_LOG("PASID %#x has Domain ID %d", p[i], oracle_did(&self->o, p[i]));
		ASSERT_TRUE(debugfs_pasid_dir(self->bdf, p[i]));
	}
	ASSERT_EQ(NPASIDS, oracle_count_pasids(&self->o));
	TH_LOG("%d PASIDs bound (largest %#x), Domain IDs: A %d, B %d", NPASIDS, p[NPASIDS - 1],
	       did_a, did_b);

	/* Replace: the largest PASID (on A) moves to B by attaching it again. */
	moved = NPASIDS - 1;
	ASSERT_EQ(self->hwpt_a, hwpt[moved]);
	ASSERT_EQ(0, attach_pasid(self->devfd, p[moved], self->hwpt_b));
	ASSERT_EQ(0, oracle_read(self->bdf, &self->o));
	ASSERT_EQ(BOUND, oracle_state(&self->o, p[moved]));
	ASSERT_EQ(did_b, oracle_did(&self->o, p[moved]));
	ASSERT_EQ(did_a, oracle_did(&self->o, p[0]));
	ASSERT_EQ(NPASIDS, oracle_count_pasids(&self->o));

	/* Detach all: no PASID left in the table, nor in debugfs; the RID stays. */
	for (i = 0; i < NPASIDS; i++) {
		ASSERT_EQ(0, detach_pasid(self->devfd, p[i])) TH_LOG("detach PASID %#x", p[i]);
	}
	ASSERT_EQ(0, oracle_read(self->bdf, &self->o));
	ASSERT_EQ(0, oracle_count_pasids(&self->o));
	for (i = 0; i < NPASIDS; i++) {
		ASSERT_FALSE(debugfs_pasid_dir(self->bdf, p[i]));
	}
	ASSERT_EQ(BOUND, oracle_state(&self->o, 0));
	ASSERT_EQ(did_a, oracle_did(&self->o, 0));
}

TEST_F(pasid, close_releases_pasids)
{
	uint32_t max;

	NEED_PASID();
	max = (1U << self->width) - 1;
	ASSERT_EQ(0, attach_rid(self->devfd, self->hwpt_a));
	ASSERT_EQ(0, attach_pasid(self->devfd, 1, self->hwpt_a));
	ASSERT_EQ(0, attach_pasid(self->devfd, 2, self->hwpt_b));
	ASSERT_EQ(0, attach_pasid(self->devfd, max, self->hwpt_b));
	ASSERT_EQ(0, oracle_read(self->bdf, &self->o));
	ASSERT_EQ(3, oracle_count_pasids(&self->o));

	close(self->devfd);
	self->devfd = -1;
	ASSERT_EQ(0, oracle_read(self->bdf, &self->o));
	ASSERT_EQ(0, oracle_count_pasids(&self->o));
	ASSERT_FALSE(debugfs_pasid_dir(self->bdf, 1));
	ASSERT_FALSE(debugfs_pasid_dir(self->bdf, max));

	/* Opened again, the device works. */
	self->devfd = pvp_cdev_open(self->bdf);
	ASSERT_LE(0, self->devfd);
	ASSERT_EQ(0, pvp_bind_iommufd(self->devfd, self->iommufd, &self->dev_id));
	ASSERT_EQ(0, hwpt_alloc(self->iommufd, self->dev_id, self->ioas_a, IOMMU_HWPT_ALLOC_PASID,
				&self->hwpt_a));
	ASSERT_USABLE();
}

TEST_F(pasid, neg_rid_on_hwpt_without_pasid_flag)
{
	int err;

	NEED_PASID();
	ASSERT_EQ(0, attach_rid(self->devfd, self->hwpt_plain));
	err = attach_pasid(self->devfd, 5, self->hwpt_a);
	TH_LOG("PASID attach with the RID on a HWPT without IOMMU_HWPT_ALLOC_PASID: %s",
	       errname(err));
	ASSERT_EQ(EINVAL, err);
	ASSERT_ORACLE(5, NOT_LISTED);
	/* Nor can a PASID go to the HWPT without the flag. */
	ASSERT_EQ(EINVAL, attach_pasid(self->devfd, 5, self->hwpt_plain));
	ASSERT_ORACLE(5, NOT_LISTED);
	ASSERT_USABLE();
}

TEST_F(pasid, neg_pasid0)
{
	int want = env_errno("PVP_EXPECT_PASID0", 0);
	int want_rid = env_errno("PVP_EXPECT_PASID0_RID", EBUSY);
	int err;

	NEED_PASID();
	/* RID detached (never attached). */
	err = attach_pasid(self->devfd, 0, self->hwpt_b);
	TH_LOG("PASID 0 attach, RID detached: %s (expected %s)", errname(err), errname(want));
	ASSERT_EQ(want, err);
	ASSERT_EQ(0, oracle_read(self->bdf, &self->o));
	if (!err) {
		/* What it did: the RID went to B through the PASID path. */
		TH_LOG("PASID 0 entry after it: %s, Domain ID %d",
		       bound_name(oracle_state(&self->o, 0)), oracle_did(&self->o, 0));
		ASSERT_EQ(0, detach_pasid(self->devfd, 0));
	}
	ASSERT_EQ(0, oracle_count_pasids(&self->o));

	/* RID attached. */
	ASSERT_EQ(0, attach_rid(self->devfd, self->hwpt_a));
	err = attach_pasid(self->devfd, 0, self->hwpt_b);
	TH_LOG("PASID 0 attach, RID attached: %s (expected %s)", errname(err), errname(want_rid));
	ASSERT_EQ(want_rid, err);
	ASSERT_EQ(0, oracle_read(self->bdf, &self->o));
	ASSERT_EQ(0, oracle_count_pasids(&self->o));
	if (!err) {
		ASSERT_EQ(0, detach_pasid(self->devfd, 0));
	}
	ASSERT_USABLE();
}

TEST_F(pasid, neg_pasid_beyond_width)
{
	int want_huge = env_errno("PVP_EXPECT_PASID_HUGE", ENOSPC);
	uint32_t first_bad;
	int err;

	NEED_PASID();
	first_bad = self->width >= 32 ? 0 : 1U << self->width;
	ASSERT_EQ(0, attach_rid(self->devfd, self->hwpt_a));
	err = attach_pasid(self->devfd, first_bad, self->hwpt_a);
	TH_LOG("PASID %#x (1 << width) attach: %s", first_bad, errname(err));
	ASSERT_EQ(EINVAL, err);
	ASSERT_ORACLE(first_bad, NOT_LISTED);
	err = attach_pasid(self->devfd, 0x80000000u, self->hwpt_a);
	TH_LOG("PASID 0x80000000 attach: %s (expected %s)", errname(err), errname(want_huge));
	ASSERT_EQ(want_huge, err);
	ASSERT_EQ(0, oracle_read(self->bdf, &self->o));
	ASSERT_EQ(0, oracle_count_pasids(&self->o));
	ASSERT_USABLE();
}

TEST_F(pasid, neg_detach_never_attached)
{
	int want = env_errno("PVP_EXPECT_DETACH_UNKNOWN", 0);
	int err;

	NEED_PASID();
	ASSERT_EQ(0, attach_rid(self->devfd, self->hwpt_a));
	ASSERT_EQ(0, attach_pasid(self->devfd, 9, self->hwpt_a));
	err = detach_pasid(self->devfd, 7);
	TH_LOG("detach of PASID 7, never attached: %s (expected %s)", errname(err), errname(want));
	ASSERT_EQ(want, err);
	/* The PASID that is attached is untouched. */
	ASSERT_ORACLE(9, BOUND);
	ASSERT_ORACLE(7, NOT_LISTED);
	ASSERT_EQ(0, detach_pasid(self->devfd, 9));
	ASSERT_USABLE();
}

/*
 * A device without PASID (PVP_NO_PASID=1, e.g. the nvme without the fixture): whatever the
 * ioctls return, the oracle must not see a usable PASID binding. This is the case that proves
 * the oracle is not vacuous: on the test kernel, with vfio-pci, every one of these attaches
 * returns 0.
 */
TEST_F(pasid, no_pasid_device_not_bound)
{
	static const uint32_t p[] = { 1, 2, 0x40, 0x3e8 };
	int want = env_errno("PVP_EXPECT_NOCAP_ATTACH", 0);
	struct iommu_hw_info info;
	unsigned int i;
	int err;

	if (!self->no_pasid)
		SKIP(return, "only for a device without PASID (PVP_NO_PASID=1)");
	ASSERT_EQ(0, hw_info(self->iommufd, self->dev_id, &info));
	ASSERT_EQ(self->width, info.out_max_pasid_log2);
	ASSERT_EQ(0, attach_rid(self->devfd, self->hwpt_a));
	for (i = 0; i < ARRAY_SIZE(p); i++) {
		err = attach_pasid(self->devfd, p[i], i % 2 ? self->hwpt_b : self->hwpt_a);
		TH_LOG("PASID %#x attach on a device without PASID: %s (expected %s)", p[i],
		       errname(err), errname(want));
		ASSERT_EQ(want, err);
	}
	ASSERT_EQ(0, oracle_read(self->bdf, &self->o));
	/* The oracle does see this device: its RID entry is there, on A's domain. */
	ASSERT_EQ(BOUND, oracle_state(&self->o, 0));
	for (i = 0; i < ARRAY_SIZE(p); i++) {
		enum bound_state s = oracle_state(&self->o, p[i]);

		TH_LOG("oracle: PASID %#x %s", p[i], bound_name(s));
		ASSERT_NE(BOUND, s);
	}
	for (i = 0; i < ARRAY_SIZE(p); i++) {
		ASSERT_EQ(0, detach_pasid(self->devfd, p[i]));
	}
}

/* ---- configuration space -------------------------------------------------------------------- */

/* Offset of the PASID capability in the extended chain of a 4 KiB config image, or 0. */
static unsigned int find_pasid_cap(const uint8_t *cfg)
{
	unsigned int pos = PCI_CFG_SPACE_SIZE, n = 0;
	uint32_t hdr;

	while (pos >= PCI_CFG_SPACE_SIZE && pos <= PCI_CFG_SPACE_EXP_SIZE - 4 && n++ < 512) {
		memcpy(&hdr, cfg + pos, 4);
		if (!hdr || hdr == 0xffffffff)
			return 0;
		if (PCI_EXT_CAP_ID(hdr) == PCI_EXT_CAP_ID_PASID)
			return pos;
		pos = PCI_EXT_CAP_NEXT(hdr);
	}
	return 0;
}

static int sysfs_config(const char *bdf, uint8_t *cfg, size_t len)
{
	char path[PATH_MAX];
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), PVP_PCI_DEVICES "/%s/config", bdf);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	r = pread(fd, cfg, len, 0);
	close(fd);
	return r == (ssize_t)len ? 0 : -EIO;
}

static int vfio_cfg_rw(int devfd, bool wr, void *buf, size_t len, unsigned int pos)
{
	uint64_t off, size;
	ssize_t r;
	int err;

	err = pvp_config_size(devfd, &off, &size);
	if (err)
		return err;
	r = wr ? pwrite(devfd, buf, len, off + pos) : pread(devfd, buf, len, off + pos);
	if (r < 0)
		return -errno;
	return r == (ssize_t)len ? 0 : -EIO;
}

/* The physical PASID Control, read the way the host kernel sees it (sysfs config). */
static int phys_ctrl(const char *bdf, uint16_t *ctrl)
{
	static uint8_t cfg[PCI_CFG_SPACE_EXP_SIZE];
	unsigned int pos;
	int err;

	err = sysfs_config(bdf, cfg, sizeof(cfg));
	if (err)
		return err;
	pos = find_pasid_cap(cfg);
	if (!pos)
		return -ENOENT;
	memcpy(ctrl, cfg + pos + PCI_PASID_CTRL, 2);
	return 0;
}

TEST_F(pasid, config_virtual_capability)
{
	const char *v = pvp_env("PVP_PASID_CAP_OFFSET");
	static uint8_t cfg[PCI_CFG_SPACE_EXP_SIZE];
	uint16_t cap, ctrl, pctrl0, pctrl, w;
	unsigned int off, found;
	uint32_t hdr;

	NEED_PASID();
	ASSERT_EQ(0, phys_ctrl(self->bdf, &pctrl0)) TH_LOG("no physical PASID capability");
	ASSERT_EQ(0, pvp_config_read(self->devfd, cfg, sizeof(cfg), 4));
	found = find_pasid_cap(cfg);
	if (!v) {
		/* No virtual capability: the physical one must not show through VFIO. */
		ASSERT_EQ(0, found) TH_LOG("a PASID capability at %#x through VFIO", found);
		SKIP(return, "PVP_PASID_CAP_OFFSET unset: the driver presents no virtual PASID "
		     "capability (checked: none visible through VFIO)");
	}
	off = strcmp(v, "auto") ? strtoul(v, NULL, 0) : found;
	ASSERT_NE(0, found) TH_LOG("no PASID capability in the chain through VFIO");
	ASSERT_EQ(off, found) TH_LOG("the chain leads to %#x, expected %#x", found, off);

	ASSERT_EQ(0, vfio_cfg_rw(self->devfd, false, &hdr, 4, off));
	ASSERT_EQ(PCI_EXT_CAP_ID_PASID, PCI_EXT_CAP_ID(hdr));
	ASSERT_EQ(1, PCI_EXT_CAP_VER(hdr));
	ASSERT_EQ(0, vfio_cfg_rw(self->devfd, false, &cap, 2, off + PCI_PASID_CAP));
	ASSERT_EQ(self->width, (cap & PCI_PASID_CAP_WIDTH) >> 8);

	/* Control keeps what the user writes; the physical one is untouched. */
	for (w = 0; w < 2; w++) {
		uint16_t val = w ? PCI_PASID_CTRL_ENABLE : 0;

		ASSERT_EQ(0, vfio_cfg_rw(self->devfd, true, &val, 2, off + PCI_PASID_CTRL));
		ASSERT_EQ(0, vfio_cfg_rw(self->devfd, false, &ctrl, 2, off + PCI_PASID_CTRL));
		ASSERT_EQ(val, ctrl);
		ASSERT_EQ(0, phys_ctrl(self->bdf, &pctrl));
		ASSERT_EQ(pctrl0, pctrl) TH_LOG("physical Control %#x, was %#x", pctrl, pctrl0);
	}
	TH_LOG("virtual capability at %#x, width %u; physical Control stays %#x", off,
	       (cap & PCI_PASID_CAP_WIDTH) >> 8, pctrl0);
}

/*
 * The physical PASID Control belongs to the host's IOMMU driver. vfio-pci maps only the first
 * dword of a hidden extended capability (or nothing, when it unlinks it), and config bytes
 * outside every capability are raw read-write: a user can write the physical Control through
 * the config region at the physical offset. A driver presenting PASID must not let it.
 */
TEST_F(pasid, config_physical_control_protected)
{
	bool writable = env_errno("PVP_EXPECT_PHYS_CTRL_WRITABLE", 0);
	static uint8_t cfg[PCI_CFG_SPACE_EXP_SIZE];
	uint16_t pctrl0, pctrl, val;
	unsigned int pos;

	NEED_PASID();
	ASSERT_EQ(0, sysfs_config(self->bdf, cfg, sizeof(cfg)));
	pos = find_pasid_cap(cfg);
	ASSERT_NE(0, pos) TH_LOG("no physical PASID capability");
	memcpy(&pctrl0, cfg + pos + PCI_PASID_CTRL, 2);

	val = pctrl0 ^ PCI_PASID_CTRL_ENABLE;
	ASSERT_EQ(0, vfio_cfg_rw(self->devfd, true, &val, 2, pos + PCI_PASID_CTRL));
	ASSERT_EQ(0, phys_ctrl(self->bdf, &pctrl));
	if (pctrl != pctrl0) {
		/* Put back what the IOMMU driver wrote. */
		val = pctrl0;
		ASSERT_EQ(0, vfio_cfg_rw(self->devfd, true, &val, 2, pos + PCI_PASID_CTRL));
		ASSERT_EQ(0, phys_ctrl(self->bdf, &val));
		ASSERT_EQ(pctrl0, val);
	}
	TH_LOG("write of %#x to the physical PASID Control (%#x) through VFIO: physical now %#x%s",
	       pctrl0 ^ PCI_PASID_CTRL_ENABLE, pos + PCI_PASID_CTRL, pctrl,
	       pctrl != pctrl0 ? " (written through, restored)" : " (untouched)");
	ASSERT_EQ(writable, pctrl != pctrl0);
}

TEST_HARNESS_MAIN
