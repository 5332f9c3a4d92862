# Per-field empirical entropy of ggml blocks in a GGUF (BENCHMARKS.md §1, "Quantized GGUF").
# Usage: python3 ggml-field-entropy.py FILE.gguf ...   (pure Python, no packages; minutes for a few MB)
# "static" = empirical (conditional) entropy of the field, no model cost; "adaptive" = the code length of
# a count-based adaptive model (counts start at 1/2), which includes the cost of learning each context.
import struct, sys, math
from collections import Counter, defaultdict
def rd_gguf(path):
    b = open(path,'rb').read(); p=[4]
    def u(fmt):
        v=struct.unpack_from('<'+fmt,b,p[0]); p[0]+=struct.calcsize('<'+fmt); return v[0]
    def s():
        n=u('Q'); v=b[p[0]:p[0]+n]; p[0]+=n; return v.decode('utf8','replace')
    sz={0:'B',1:'b',2:'H',3:'h',4:'I',5:'i',6:'f',7:'?',10:'Q',11:'q',12:'d'}
    def val(t):
        if t==8: return s()
        if t==9:
            et=u('I'); n=u('Q'); return [val(et) for _ in range(n)]
        return u(sz[t])
    ver=u('I'); nt=u('Q'); nkv=u('Q'); kv={}
    for _ in range(nkv):
        k=s(); t=u('I'); kv[k]=val(t)
    ts=[]
    for _ in range(nt):
        name=s(); nd=u('I'); dims=[u('Q') for _ in range(nd)]; t=u('I'); off=u('Q'); ts.append((name,dims,t,off))
    al=kv.get('general.alignment',32); start=(p[0]+al-1)//al*al
    return b,[(n,d,t,start+o) for n,d,t,o in ts]
class M:
    def __init__(s,A): s.A=A; s.c={}; s.t={}; s.cost=0.0; s.st=defaultdict(Counter)
    def add(s,ctx,sym):
        c=s.c.get(ctx)
        if c is None: c=s.c[ctx]=[0.5]*s.A; s.t[ctx]=0.5*s.A
        s.cost-=math.log2(c[sym]/s.t[ctx]); c[sym]+=1; s.t[ctx]+=1; s.st[ctx][sym]+=1
    def static(s): return sum(H(c) for c in s.st.values())
def H(c):
    n=sum(c.values()); return -sum(v*math.log2(v/n) for v in c.values())
def Hc(d):  # conditional: dict ctx->Counter
    return sum(H(c) for c in d.values())
def f16(h):
    return struct.unpack('<e',struct.pack('<H',h))[0]
BS={6:(32,22),8:(32,34),12:(256,144),14:(256,210),13:(256,176),2:(32,18)}
def q4k_scales(q):
    sc=[];mn=[]
    for j in range(8):
        if j<4: sc.append(q[j]&63); mn.append(q[j+4]&63)
        else: sc.append((q[j+4]&0xF)|((q[j-4]>>6)<<4)); mn.append((q[j+4]>>4)|((q[j]>>6)<<4))
    return sc,mn
acc=defaultdict(lambda: defaultdict(float)); cnt=defaultdict(int)
def add(t,k,bits): acc[t][k]+=bits
MS=defaultdict(dict)
def m(t,k,A):
    d=MS[t]
    if k not in d: d[k]=M(A)
    return d[k]
def s8(x): return x-256 if x>127 else x
def analyze(b,name,t,off,nb):
    blk,ts=BS[t]
    cnt[(t,'nb')]+=nb; cnt[(t,'raw')]+=nb*ts
    if t==12:
        for i in range(nb):
            o=off+i*ts; d=struct.unpack_from('<H',b,o)[0]; dm=struct.unpack_from('<H',b,o+2)[0]
            m(t,'d.lo',256).add(0,d&255); m(t,'d.hi',256).add(0,d>>8); m(t,'dmin.lo',256).add(0,dm&255); m(t,'dmin.hi',256).add(0,dm>>8)
            sc,mn=q4k_scales(b[o+4:o+16]); fd=f16(d); fm=f16(dm)
            prev=16
            for j in range(8):
                m(t,'sc',64).add(0,sc[j]); m(t,'mn',64).add(0,mn[j]); m(t,'sc|prev sc',64).add(sc[j-1] if j else 64,sc[j]); m(t,'mn|sc',64).add(sc[j],mn[j])
                z = min(15,max(0,round(fm*mn[j]/(fd*sc[j])))) if fd*sc[j]!=0 else 16
                qb=o+16+(j//2)*32; sh=4*(j&1)
                for l in range(32):
                    q=(b[qb+l]>>sh)&15
                    m(t,'q',16).add(0,q); m(t,'q|z',16).add(z,q); m(t,'q|mn',16).add(mn[j],q); m(t,'q|sc',16).add(sc[j],q); m(t,'q|prev',16).add(prev,q); m(t,'q|z,prev',16).add((z,prev),q); m(t,'q|z,pos',16).add((z,l),q); prev=q
    elif t==14:
        for i in range(nb):
            o=off+i*ts; ql=b[o:o+128]; qh=b[o+128:o+192]; scs=struct.unpack_from('<16b',b,o+192); d=struct.unpack_from('<H',b,o+208)[0]
            m(t,'d.lo',256).add(0,d&255); m(t,'d.hi',256).add(0,d>>8)
            for k,s_ in enumerate(scs): m(t,'sc',256).add(0,s_&255); m(t,'sc|prev',256).add(scs[k-1] if k else 999, s_&255)
            vals=[0]*256
            for n in (0,1):
                L=ql[n*64:n*64+64]; Hh=qh[n*32:n*32+32]
                for l in range(32):
                    vals[n*128+l]=(L[l]&15)|(((Hh[l]>>0)&3)<<4)
                    vals[n*128+l+32]=(L[l+32]&15)|(((Hh[l]>>2)&3)<<4)
                    vals[n*128+l+64]=(L[l]>>4)|(((Hh[l]>>4)&3)<<4)
                    vals[n*128+l+96]=(L[l+32]>>4)|(((Hh[l]>>6)&3)<<4)
            prev=32
            for k in range(256):
                q=vals[k]; sci=scs[k//16]; a=min(abs(sci),127)
                m(t,'q',64).add(0,q); m(t,'q|sc',64).add(sci,q); m(t,'q||sc|/2',64).add(a>>1,q); m(t,'q|pos16',64).add(k%16,q); m(t,'q|prev',64).add(prev,q); m(t,'q||sc|/2,|prev-32|/4',64).add((a>>1,abs(prev-32)>>2),q); prev=q
                m(t,'lo',16).add(0,q&15); m(t,'hi',4).add(0,q>>4); m(t,'hi|lo',4).add(q&15,q>>4); m(t,'hi||sc|',4).add(a,q>>4); m(t,'lo||sc|,hi',16).add((a,q>>4),q&15)
    elif t==8:
        for i in range(nb):
            o=off+i*ts; d=struct.unpack_from('<H',b,o)[0]
            m(t,'d.lo',256).add(0,d&255); m(t,'d.hi',256).add(0,d>>8); m(t,'d.hi|prev d.hi',256).add(prevdh[0],d>>8); prevdh[0]=d>>8
            e=(d>>10)&31; dq=(d>>7)&255
            prev=0
            for l in range(32):
                q=b[o+2+l]
                m(t,'q',256).add(0,q); m(t,'q|dexp',256).add(e,q); m(t,'q|dexp+2man',256).add(d>>8,q); m(t,'q||prev|/16',256).add(abs(s8(prev))>>4,q); m(t,'q|dexp,|prev|/32',256).add((e,abs(s8(prev))>>5),q); prev=q
    elif t==6:
        for i in range(nb):
            o=off+i*ts; d=struct.unpack_from('<H',b,o)[0]; qh=struct.unpack_from('<I',b,o+2)[0]
            m(t,'d.lo',256).add(0,d&255); m(t,'d.hi',256).add(0,d>>8)
            prev=16
            for j in range(32):
                x=b[o+6+(j&15)]; q=((x>>4) if j>=16 else (x&15)) | (((qh>>j)&1)<<4)
                m(t,'q',32).add(0,q); m(t,'q|prev',32).add(prev,q); m(t,'q|dexp',32).add((d>>10)&31,q); prev=q
prevdh=[0]
for path in sys.argv[1:]:
    MS.clear(); cnt.clear()
    b,ts=rd_gguf(path)
    types=Counter()
    for name,dims,t,off in ts:
        n=1
        for x in dims: n*=x
        types[(t)]+=n*BS.get(t,(1,{0:4,1:2}.get(t,0)))[1]//BS.get(t,(1,1))[0]
        if t in BS: analyze(b,name,t,off,n//BS[t][0])
    print(path, 'bytes by type', dict(types), 'file',len(b))
    for t,d in MS.items():
        nb=cnt[(t,'nb')]; nq=nb*BS[t][0]
        print(' type',t,'blocks',nb,'raw',cnt[(t,'raw')])
        for k,mm in d.items():
            per = nq if (k.startswith('q') or k.startswith('lo') or k.startswith('hi')) else nb
            unit='bits/value' if per==nq else 'bits/block'
            print('   %-24s static %.4f  adaptive %.4f %s  (adaptive bytes %.0f)'%(k,mm.static()/per,mm.cost/per,unit,mm.cost/8))
