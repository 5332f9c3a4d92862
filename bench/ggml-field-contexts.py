# Context experiments on a subset of tensors (names containing PATTERN), same measures as ggml-field-entropy.py.
# Usage: python3 ggml-field-contexts.py FILE.gguf PATTERN      e.g. bard-q4_K_M.gguf blk.0.
# quicker context experiments on a subset of tensors (names containing argv[2])
import sys; sys.argv, pat = sys.argv[:2], sys.argv[2]
exec(open(__file__.replace('ggml-field-contexts.py', 'ggml-field-entropy.py')).read().split('for path in sys.argv[1:]:\n    MS.clear()')[0])
def run(path):
    b,ts=rd_gguf(path)
    for name,dims,t,off in ts:
        if pat not in name or t not in BS: continue
        n=1
        for x in dims: n*=x
        analyze2(b,name,t,off,n//BS[t][0])
def analyze2(b,name,t,off,nb):
    blk,ts=BS[t]; cnt[(t,'nb')]+=nb
    if t==12:
        pd=[0,0]
        for i in range(nb):
            o=off+i*ts; d=struct.unpack_from('<H',b,o)[0]; dm=struct.unpack_from('<H',b,o+2)[0]
            m(t,'d.e6',64).add(0,d>>10); m(t,'d.e6|prev',64).add(pd[0]>>10,d>>10); m(t,'d.man10|e6',1024).add(d>>10,d&1023); m(t,'d.man10',1024).add(0,d&1023)
            m(t,'dm.e6',64).add(0,dm>>10); m(t,'dm.e6|prev',64).add(pd[1]>>10,dm>>10); m(t,'dm.man10',1024).add(0,dm&1023)
            pd=[d,dm]
            sc,mn=q4k_scales(b[o+4:o+16]); fd=f16(d); fm=f16(dm)
            prev=16
            for j in range(8):
                m(t,'sc',64).add(0,sc[j]); m(t,'sc|prev sc',64).add(sc[j-1] if j else 64,sc[j]); m(t,'sc|prev sc/4',64).add((sc[j-1]>>2) if j else 64,sc[j]); m(t,'mn',64).add(0,mn[j]); m(t,'mn|sc/4',64).add(sc[j]>>2,mn[j]); m(t,'mn|prevmn/4',64).add((mn[j-1]>>2) if j else 64,mn[j]); m(t,'mn|sc/8,prevmn/8',64).add((sc[j]>>3,(mn[j-1]>>3) if j else 64),mn[j])
                z = min(15,max(0,round(fm*mn[j]/(fd*sc[j])))) if fd*sc[j]!=0 else 16
                zf = min(31,max(0,round(2*fm*mn[j]/(fd*sc[j])))) if fd*sc[j]!=0 else 32
                qb=o+16+(j//2)*32; sh=4*(j&1)
                for l in range(32):
                    q=(b[qb+l]>>sh)&15
                    m(t,'q',16).add(0,q); m(t,'q|z',16).add(z,q); m(t,'q|z2',16).add(zf,q); m(t,'q|z,|prev-z|',16).add((z,min(abs(prev-z),7)),q); m(t,'q|z,prev',16).add((z,prev),q); m(t,'q|z,sc/8',16).add((z,sc[j]>>3),q); prev=q
    elif t==14:
        for i in range(nb):
            o=off+i*ts; ql=b[o:o+128]; qh=b[o+128:o+192]; scs=struct.unpack_from('<16b',b,o+192); d=struct.unpack_from('<H',b,o+208)[0]
            for k,s_ in enumerate(scs): m(t,'sc',256).add(0,s_&255); m(t,'sc|prev/8',256).add((scs[k-1]>>3) if k else 999, s_&255)
            vals=[0]*256
            for n in (0,1):
                L=ql[n*64:n*64+64]; Hh=qh[n*32:n*32+32]
                for l in range(32):
                    vals[n*128+l]=(L[l]&15)|(((Hh[l]>>0)&3)<<4)
                    vals[n*128+l+32]=(L[l+32]&15)|(((Hh[l]>>2)&3)<<4)
                    vals[n*128+l+64]=(L[l]>>4)|(((Hh[l]>>4)&3)<<4)
                    vals[n*128+l+96]=(L[l+32]>>4)|(((Hh[l]>>6)&3)<<4)
            prev=32; run_=0
            for k in range(256):
                q=vals[k]; sci=scs[k//16]; a=min(abs(sci),127)
                if k%16==0: run_=0
                m(t,'q',64).add(0,q); m(t,'q||sc|/2',64).add(a>>1,q); m(t,'q||sc|/4',64).add(a>>2,q); m(t,'q||sc|/4,|prev-32|/4',64).add((a>>2,abs(prev-32)>>2),q); m(t,'q||sc|/4,pos0',64).add((a>>2,k%16==0),q); prev=q
    elif t==8:
        for i in range(nb):
            o=off+i*ts; d=struct.unpack_from('<H',b,o)[0]
            e=(d>>10)&31
            prev=0; acc_=0
            for l in range(32):
                q=b[o+2+l]
                mag = (acc_//l) if l else 99
                m(t,'q',256).add(0,q); m(t,'q|dexp',256).add(e,q); m(t,'q|d>>8',256).add(d>>8,q); m(t,'q|dexp,runmag/8',256).add((e,min(mag>>3,15)),q); m(t,'q|runmag/8',256).add(min(mag>>3,15),q); m(t,'q|runmag/4',256).add(min(mag>>2,31),q); prev=q; acc_+=abs(s8(q))
run(sys.argv[1])
for t,d in MS.items():
    nb=cnt[(t,'nb')]; nq=nb*BS[t][0]
    print(' type',t,'blocks',nb)
    for k,mm in d.items():
        per = nq if (k.startswith('q')) else nb
        print('   %-24s static %.4f  adaptive %.4f %s'%(k,mm.static()/per,mm.cost/per,'b/value' if per==nq else 'b/block'))
