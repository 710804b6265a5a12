# main sweep point: 0% of events are celebrities (parallel data)
celeb_frac = 0.00
out_dir = 'out/celeb_00'
