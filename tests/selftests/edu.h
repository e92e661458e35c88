/* SPDX-License-Identifier: GPL-2.0 */
/* QEMU's edu device (1234:11e8), BAR0 as the tests use it (QEMU's docs/specs/edu.rst). */
#ifndef EDU_H
#define EDU_H

#define EDU_LIVE 0x04		/* liveness: reads back the complement */
#define EDU_FACT 0x08		/* factorial: a write starts the computation */
#define EDU_STATUS 0x20		/* bit 0 busy, bit 7 IRQ on factorial */
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_CNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_DMA_START 0x1
#define EDU_DMA_TO_RAM 0x2	/* direction: from edu's buffer to RAM */

/* edu's DMA buffer: its device address and size. */
#define EDU_BUF 0x40000ULL
#define EDU_BUF_SIZE 4096

#endif
