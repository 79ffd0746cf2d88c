* Filament device, HSPICE style (rramsim test fixture)
.subckt hsvcm p n x0=0.03 from[0, 1] gon=180u goff=2u
.param vs=0.72 vrs=0.72 v0=0.1 kk=1.1e5
.param gof(x)='goff + (gon-goff)*x'      $ conductance of state x
ev one 0 vol='1'
cs s 0 1 IC='x0'
rs s one 1e15
gs 0 s cur='(v(p,n) > vs ? limit(kk*(exp((v(p,n)-vs)/v0)-1), 0, 1e12)*(1-v(s)) : 0) - (v(p,n) < -vrs ? kk*(exp((-v(p,n)-vrs)/v0)-1)*v(s) : 0)'
gm p n cur='gof(v(s))*v(p,n)*(1 + 0.05*v(p,n)**2)'
.ends hsvcm
