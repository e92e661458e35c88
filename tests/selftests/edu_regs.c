// SPDX-License-Identifier: GPL-2.0
/*
 * edu_regs: register access to an edu device (QEMU 1234:11e8) from user space, for a guest whose
 * kernel has no /dev/mem: BAR0 is mapped through sysfs (resource0), the command register is
 * written through the sysfs config file, and DMA addresses come from /proc/self/pagemap.
 * It runs inside the inner guest of tests/guest/suites/migration-qemu.sh, where the edu is a
 * vfio-pci device of QEMU; it works on any edu whose BAR0 the caller may map.
 *
 *   edu_regs BDF OP...
 *     enable        set memory space and bus master in the command register
 *     r32:OFF       read 32 bits at BAR0+OFF, print "r32 OFF VALUE"
 *     r64:OFF       read 64 bits, print "r64 OFF VALUE"
 *     w32:OFF:VAL   write 32 bits
 *     w64:OFF:VAL   write 64 bits
 *     idle:OFF:MASK wait (at most 10 s) until the register's MASK bits read 0
 *     dma:N         DMA round trip of N bytes (1..4096): a RAM page to the device buffer
 *                   (device address 0x40000), back into another page; print "dma N ok" when
 *                   the bytes came back, else fail
 *
 * Values are C numbers (0x.. for hex). Exit 0 when every operation succeeded, 1 on a failed
 * operation (with a message on stderr), 2 on bad usage.
 */
#include "sysfs_dev.h"

#include "edu.h"

#define BAR0_MAP 4096

static volatile uint8_t *bar;
static char dev[256];

static int usage(void)
{
	fprintf(stderr, "usage: edu_regs BDF {enable|r32:OFF|r64:OFF|w32:OFF:VAL|w64:OFF:VAL|"
			"idle:OFF:MASK|dma:N}...\n");
	return 2;
}

static uint32_t rd32(uint64_t off)
{
	return *(volatile uint32_t *)(bar + off);
}

static uint64_t rd64(uint64_t off)
{
	return *(volatile uint64_t *)(bar + off);
}

static void wr32(uint64_t off, uint32_t v)
{
	*(volatile uint32_t *)(bar + off) = v;
}

static void wr64(uint64_t off, uint64_t v)
{
	*(volatile uint64_t *)(bar + off) = v;
}

/* wait_idle: until (reg & mask) == 0, at most 10 s; 0 when idle. */
static int wait_idle(uint64_t off, uint32_t mask)
{
	double end = sd_now() + 10;

	while (rd32(off) & mask) {
		if (sd_now() > end) {
			fprintf(stderr, "edu_regs: register 0x%" PRIx64 " still has bits 0x%x after 10 s\n",
				off, rd32(off) & mask);
			return -1;
		}
		usleep(1000);
	}
	return 0;
}

static int enable(void)
{
	return sd_set_command("edu_regs", dev, 0x6 /* memory space, bus master */);
}

/* phys: the physical address of a locked page of this process, from pagemap. */
static int phys(void *va, uint64_t *pa)
{
	long psz = sysconf(_SC_PAGESIZE);
	uint64_t ent;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	off_t at = (off_t)((uintptr_t)va / psz) * 8;

	if (fd < 0 || pread(fd, &ent, 8, at) != 8) {
		fprintf(stderr, "edu_regs: pagemap: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	if (!(ent >> 63) || !(ent & ((1ULL << 55) - 1))) {
		fprintf(stderr, "edu_regs: pagemap gives no frame (not root?): 0x%016" PRIx64 "\n", ent);
		return -1;
	}
	*pa = (ent & ((1ULL << 55) - 1)) * psz + (uintptr_t)va % psz;
	return 0;
}

static int dma_run(uint64_t src, uint64_t dst, uint64_t n, uint32_t cmd)
{
	wr64(EDU_DMA_SRC, src);
	wr64(EDU_DMA_DST, dst);
	wr64(EDU_DMA_CNT, n);
	wr32(EDU_DMA_CMD, cmd | EDU_DMA_START);
	return wait_idle(EDU_DMA_CMD, EDU_DMA_START);
}

static int dma(uint64_t n)
{
	long psz = sysconf(_SC_PAGESIZE);
	uint8_t *mem;
	uint64_t pa_out, pa_in, i;

	if (n < 1 || n > EDU_BUF_SIZE || n > (uint64_t)psz) {
		fprintf(stderr, "edu_regs: dma size %" PRIu64 " not in 1..4096\n", n);
		return -1;
	}
	mem = mmap(NULL, 2 * psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || mlock(mem, 2 * psz)) {
		fprintf(stderr, "edu_regs: locked buffer: %s\n", strerror(errno));
		return -1;
	}
	srand((unsigned int)(sd_now() * 1000));
	for (i = 0; i < n; i++) {
		mem[i] = (uint8_t)rand();
		mem[psz + i] = (uint8_t)~mem[i];
	}
	if (phys(mem, &pa_out) || phys(mem + psz, &pa_in))
		return -1;
	if (dma_run(pa_out, EDU_BUF, n, 0) || dma_run(EDU_BUF, pa_in, n, EDU_DMA_TO_RAM))
		return -1;
	for (i = 0; i < n; i++) {
		if (((volatile uint8_t *)mem)[psz + i] != mem[i]) {
			fprintf(stderr, "edu_regs: dma: byte %" PRIu64 " came back 0x%02x, sent 0x%02x\n",
				i, mem[psz + i], mem[i]);
			return -1;
		}
	}
	munmap(mem, 2 * psz);
	printf("dma %" PRIu64 " ok\n", n);
	return 0;
}

/* op: one operation; 0 on success, -1 on failure, -2 on bad usage. */
static int op(char *s)
{
	char *a = strchr(s, ':'), *b = NULL;
	uint64_t off = 0, val = 0;

	if (a) {
		*a++ = 0;
		b = strchr(a, ':');
		if (b)
			*b++ = 0;
		if (sd_parse_u64(a, &off) || (b && sd_parse_u64(b, &val)))
			return -2;
	}
	if (!strcmp(s, "enable") && !a)
		return enable();
	if (!strcmp(s, "dma") && a && !b)
		return dma(off);
	if (!a || off > BAR0_MAP - 8 || off % 4)
		return -2;
	if (!strcmp(s, "r32") && !b)
		printf("r32 0x%02" PRIx64 " 0x%08" PRIx32 "\n", off, rd32(off));
	else if (!strcmp(s, "r64") && !b && off % 8 == 0)
		printf("r64 0x%02" PRIx64 " 0x%016" PRIx64 "\n", off, rd64(off));
	else if (!strcmp(s, "w32") && b && val <= UINT32_MAX)
		wr32(off, (uint32_t)val);
	else if (!strcmp(s, "w64") && b && off % 8 == 0)
		wr64(off, val);
	else if (!strcmp(s, "idle") && b && val <= UINT32_MAX)
		return wait_idle(off, (uint32_t)val);
	else
		return -2;
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t len = BAR0_MAP;
	int i, r;

	if (argc < 3 || strchr(argv[1], '/'))
		return usage();
	snprintf(dev, sizeof(dev), "/sys/bus/pci/devices/%s", argv[1]);
	bar = sd_map_bar("edu_regs", dev, 0, &len);
	if (!bar)
		return 1;
	for (i = 2; i < argc; i++) {
		char buf[64];

		snprintf(buf, sizeof(buf), "%s", argv[i]);
		r = op(buf);
		fflush(stdout);
		if (r == -2) {
			fprintf(stderr, "edu_regs: bad operation \"%s\"\n", argv[i]);
			return usage();
		}
		if (r)
			return 1;
	}
	return 0;
}
