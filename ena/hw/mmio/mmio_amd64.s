#include "textflag.h"

// func Load32(addr unsafe.Pointer) uint32
TEXT ·Load32(SB), NOSPLIT, $0-12
	MOVQ addr+0(FP), AX
	MOVL (AX), BX
	MOVL BX, ret+8(FP)
	RET

// func Store32(addr unsafe.Pointer, val uint32)
TEXT ·Store32(SB), NOSPLIT, $0-12
	MOVQ addr+0(FP), AX
	MOVL val+8(FP), BX
	MOVL BX, (AX)
	RET

// func Copy64(dst, src unsafe.Pointer, words int)
TEXT ·Copy64(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ words+16(FP), CX
	TESTQ CX, CX
	JLE done
loop:
	MOVQ (SI), AX
	MOVQ AX, (DI)
	ADDQ $8, SI
	ADDQ $8, DI
	DECQ CX
	JNZ loop
done:
	RET

// func StoreBarrier()
TEXT ·StoreBarrier(SB), NOSPLIT, $0-0
	RET

// func Flush()
TEXT ·Flush(SB), NOSPLIT, $0-0
	SFENCE
	RET
